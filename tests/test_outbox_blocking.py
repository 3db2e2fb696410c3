"""No blocking outbox call on the event loop: the pipeline and the uplink run under a blocking-call
detector (blockbuster) with a real sealed outbox, a real Mosquitto and the reference central service."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from central.embedded import EmbeddedCentral
from drivers import uuids
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox, load_or_create_key
from gateway.uplink import Uplink
from hardware_sims.encoding import date_time
from protocol import BrokerSettings, Topics
from tests.conftest import Mosquitto
from tests.support import take
from zoning import standard_plan

OSLO = ZoneInfo("Europe/Oslo")
SCALE = "AA:BB:CC:00:00:07"
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def weighing(kg: int, when: datetime) -> bytes:
    """Weight Measurement: SI units, time stamp present; 0.005 kg steps."""
    stamp = date_time(when.astimezone(OSLO).replace(tzinfo=None))
    return bytes([0b0000_0010]) + (kg * 200).to_bytes(2, "little") + stamp


async def wait_until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(condition):  # the test's own look at SQLite is blocking too
            await asyncio.sleep(0.02)


@pytest.mark.usefixtures("no_blocking")
async def test_storing_pruning_and_sending_never_block_the_event_loop(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # Opening things is blocking too: the test does it off the loop, as the gateway does before it.
    outbox = await asyncio.to_thread(
        lambda: SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key")))
    clock = [NOW - timedelta(days=120)]
    device = DeviceSection(address=SCALE, kind=MeasurementKind.BODY_WEIGHT, serial="SCALE1")
    plan = await asyncio.to_thread(
        lambda: standard_plan(load_profile("standard-heart-failure"), load_advice(), date(2026, 6, 1)))
    pipeline = await asyncio.to_thread(
        lambda: Pipeline(patient="p-test", devices={SCALE: device}, plan=plan, outbox=outbox, zone=OSLO,
                         clock_tolerance=timedelta(minutes=5), now=lambda: clock[0]))
    uplink = Uplink(outbox, BrokerSettings(port=mosquitto.port, insecure_dev=True), Topics("t", "gw-block"),
                    version="test", ack_timeout_s=2)
    pipeline.readings.subscribe(lambda _r, _a: uplink.notify())
    central = store = await asyncio.to_thread(
        EmbeddedCentral, BrokerSettings(port=mosquitto.port, insecure_dev=True), tmp_path / "central.sqlite3")
    await asyncio.to_thread(central.provision, "gw-block", tenant="t", patient="p-test")
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        u = tasks.create_task(uplink.run())
        # An old weighing, then one 120 days later: stored, judged against history, history pruned.
        for kg, at in ((80, NOW - timedelta(days=120)), (81, NOW)):
            clock[0] = at + timedelta(seconds=10)
            assert await take(pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, weighing(kg, at)) is not None
        uplink.post_event("storage_recovered", {})
        await wait_until(lambda: (store.count(), len(store.events()), outbox.depth()) == (2, 1, 0))
        u.cancel()
        c.cancel()
    await asyncio.to_thread(outbox.close)
    await asyncio.to_thread(central.close)
