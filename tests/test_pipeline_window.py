"""What the pipeline holds in memory (issue 17.4): constructing it reads nothing (start-up reads the
latest day of each kind, off the event loop), and as readings arrive it keeps the same bound start-up
applies."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from drivers import uuids
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline
from gateway.readings import pipeline as pipeline_module
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox, load_or_create_key
from tests.support import take
from tests.test_storage_history import OSLO, SCALE, weighing
from zoning import Plan, standard_plan

DAY = datetime(2026, 9, 1, 0, 5, tzinfo=OSLO)


def open_outbox(folder: Path) -> SealedOutbox:
    return SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))


def the_plan() -> Plan:
    return standard_plan(load_profile("standard-heart-failure"), load_advice(), date(2026, 8, 1))


def pipeline_on(outbox: SealedOutbox, clock: list[datetime], plan: Plan | None = None) -> Pipeline:
    device = DeviceSection(address=SCALE, kind=MeasurementKind.BODY_WEIGHT, serial="SCALE1")
    plan = plan or the_plan()
    return Pipeline(patient="p-test", devices={SCALE: device}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5), now=lambda: clock[0])


async def weigh_at(pipeline: Pipeline, clock: list[datetime], when: datetime, grams: int = 80_000) -> None:
    clock[0] = (when + timedelta(seconds=5)).astimezone(UTC)
    assert await take(pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, weighing(grams, when)) is not None


@pytest.mark.usefixtures("no_blocking")
async def test_constructing_reads_nothing_and_start_reads_the_latest_day_off_the_loop(tmp_path: Path) -> None:
    clock = [DAY]
    outbox = await asyncio.to_thread(open_outbox, tmp_path)
    plan = await asyncio.to_thread(the_plan)  # the shipped profile is read from a file
    first = pipeline_on(outbox, clock, plan)  # on the loop: a blocking read here fails the test
    for minute in range(3):
        await weigh_at(first, clock, DAY + timedelta(minutes=minute))
    again = pipeline_on(outbox, clock, plan)  # a restart on the same outbox
    assert again.history == []
    await again.start()
    assert [p.id for p in again.history] == [p.id for p in first.history] and len(again.history) == 3
    await asyncio.to_thread(outbox.close)


async def test_a_busy_day_is_held_in_memory_as_start_up_holds_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "LATEST_DAY_KEPT", 10)
    clock = [DAY]
    outbox = open_outbox(tmp_path)
    pipeline = pipeline_on(outbox, clock)
    await weigh_at(pipeline, clock, DAY - timedelta(days=1))  # the day before: replaced by the new day
    for minute in range(15):
        await weigh_at(pipeline, clock, DAY + timedelta(minutes=10 + minute), 80_000 + minute * 5)
    await weigh_at(pipeline, clock, DAY + timedelta(minutes=1), 79_000)  # fetched late from the scale's memory
    assert len(pipeline.history) == 10
    restarted = pipeline_on(outbox, clock)
    await restarted.start()
    assert sorted(p.id for p in pipeline.history) == sorted(p.id for p in restarted.history)
    assert min(p.effective for p in pipeline.history) == DAY + timedelta(minutes=15)
    outbox.close()
