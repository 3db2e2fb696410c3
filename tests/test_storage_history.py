"""Zoning's history read from the outbox per kind and window: start-up holds only the latest day of each
kind, and a trend across a restart is still judged from the stored readings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers import uuids
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox, load_or_create_key
from hardware_sims.encoding import date_time
from tests.support import take
from zoning import PastReading, Zone, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
SCALE = "AA:BB:CC:00:00:07"
START = datetime(2026, 9, 1, 7, 30, tzinfo=UTC)


def weighing(grams: int, when: datetime) -> bytes:
    stamp = date_time(when.astimezone(OSLO).replace(tzinfo=None))
    return bytes([0b0000_0010]) + (grams // 5).to_bytes(2, "little") + stamp


def pipeline_on(folder: Path, clock: list[datetime]) -> Pipeline:
    outbox = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
    device = DeviceSection(address=SCALE, kind=MeasurementKind.BODY_WEIGHT, serial="SCALE1")
    plan = standard_plan(load_profile("standard-heart-failure"), load_advice(), date(2026, 8, 1))
    return Pipeline(patient="p-test", devices={SCALE: device}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5), now=lambda: clock[0])


async def weigh(pipeline: Pipeline, clock: list[datetime], grams: int, when: datetime) -> Zone:
    clock[0] = when + timedelta(seconds=5)
    seen: list[Zone] = []
    stop = pipeline.readings.subscribe(lambda _r, a: seen.append(a.zone))
    assert await take(pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, weighing(grams, when)) is not None
    stop()
    return seen[0]


async def test_start_up_reads_the_latest_day_and_a_trend_spans_a_restart(tmp_path: Path) -> None:
    clock = [START]
    pipeline = pipeline_on(tmp_path, clock)
    for day in range(60):  # sixty stable days, four weighings a day
        for hour in range(4):
            # The very first weighing has nothing to be compared with: unassessed, never green (issue 9.5).
            expected = Zone.UNASSESSED if (day, hour) == (0, 0) else Zone.GREEN
            assert await weigh(pipeline, clock, 80_000, START + timedelta(days=day, hours=hour)) == expected
    pipeline._outbox.close()

    pipeline = pipeline_on(tmp_path, clock)  # a restart
    await pipeline.start()
    assert len(pipeline.history) == 4 and all(isinstance(p, PastReading) for p in pipeline.history)
    assert {p.effective.date() for p in pipeline.history} == {(START + timedelta(days=59)).date()}
    # Two days later, +2.5 kg: the 3-day rise is judged against the weighings stored before the restart.
    assert await weigh(pipeline, clock, 82_500, START + timedelta(days=61)) == Zone.RED
    pipeline._outbox.close()
