"""Listeners of the pipeline: one that fails never keeps the others (the uplink) from hearing of a reading."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.measurement import MeasurementKind
from drivers.uuids import BLOOD_PRESSURE_MEASUREMENT
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, Reading
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox
from hardware_sims.blood_pressure import BloodPressureMonitor, CuffResult
from tests.conftest import Mosquitto
from tests.support import take
from zoning import Assessment, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
CUFF = "F0:5E:1A:00:00:01"


def make_pipeline(tmp_path: Path) -> Pipeline:
    device = DeviceSection(address=CUFF, kind=MeasurementKind.BLOOD_PRESSURE)
    plan = standard_plan(load_profile("standard-blood-pressure"), load_advice(), date(2026, 1, 1))
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", b"k" * 32)
    return Pipeline(patient="p-test", devices={CUFF: device}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5))


def cuff_value(minute: int) -> bytes:
    return BloodPressureMonitor(address=CUFF).measurement(CuffResult(128, 82, 72), datetime(2026, 3, 1, 8, minute))


async def test_a_failing_listener_does_not_stop_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = make_pipeline(tmp_path)
    heard: list[str] = []

    def printer(reading: Reading, assessment: Assessment) -> None:
        raise BrokenPipeError("the terminal went away")

    pipeline.readings.subscribe(printer)
    pipeline.readings.subscribe(lambda reading, _assessment: heard.append(str(reading.id)))
    with caplog.at_level(logging.ERROR):
        reading = await take(pipeline, CUFF, BLOOD_PRESSURE_MEASUREMENT, cuff_value(0))
        second = await take(pipeline, CUFF, BLOOD_PRESSURE_MEASUREMENT, cuff_value(1))
    assert reading is not None and second is not None
    assert heard == [str(reading.id), str(second.id)]  # the uplink's listener heard of both
    # One line per failure, naming the listener and what went wrong, never the exception's text or the
    # reading (the arguments carry the patient's values).
    failures = [r for r in caplog.records if "printer" in r.getMessage()]
    assert len(failures) == 2 and all("BrokenPipeError" in r.getMessage() for r in failures)
    assert "the terminal went away" not in caplog.text and "\n" not in failures[0].getMessage()
    assert all(r.exc_info is None for r in failures)


async def test_unsubscribing_stops_delivery(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    heard: list[str] = []
    unsubscribe = pipeline.readings.subscribe(lambda reading, _assessment: heard.append(str(reading.id)))
    await take(pipeline, CUFF, BLOOD_PRESSURE_MEASUREMENT, cuff_value(0))
    unsubscribe()
    unsubscribe()  # twice is harmless: a page closing and its session ending may both do it
    await take(pipeline, CUFF, BLOOD_PRESSURE_MEASUREMENT, cuff_value(1))
    assert len(heard) == 1


async def test_a_failing_ack_listener_does_not_stop_delivery(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The demo's printer hears of acks too: if it fails (a closed terminal), readings still drain."""
    import asyncio
    import contextlib

    from central.embedded import EmbeddedCentral
    from gateway.service import Gateway
    from gateway.settings import build_settings
    from hardware_sims.home import SimulatedHome
    from protocol import BrokerSettings

    def printer(ids: list[str]) -> None:
        raise BrokenPipeError("the terminal went away")

    source = SimulatedHome(interval_s=0.01, count=3)
    settings = build_settings({
        "gateway": {"id": "gw-test-1", "tenant": "test-kommune", "patient": "p-test", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "insecure_dev": True},
        "device_source": "simulated-home",
        "devices": [{"address": d.address, "kind": d.kind, "serial": d.serial} for d in source.devices],
    })
    gateway = Gateway(settings, source)
    gateway.uplink.acks.subscribe(printer)
    central = EmbeddedCentral(BrokerSettings(port=mosquitto.port, insecure_dev=True), tmp_path / "central.sqlite3")
    central.provision("gw-test-1", tenant="test-kommune", patient="p-test")
    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(central.run()), tasks.create_task(gateway.run())]
        async with asyncio.timeout(20):
            while not (gateway.pipeline.counts["stored"] == 3 and gateway.outbox.depth() == 0):
                await asyncio.sleep(0.02)
        for task in running:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    central.close()
