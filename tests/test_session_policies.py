"""The pure decisions behind a BLE session, with bytes alone: which value of a continuous oximeter's
stream becomes the reading, which glucose records are asked for, when a device may forget a value. The
sessions that use them are tested end to end in test_ble_sessions.py; the pauses between a device's
retries are protocol.Backoff's (test_backoff.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers import Delivery, MeasurementKind, uuids
from drivers.continuous_oximetry import ContinuousSelection
from drivers.glucose_sequence import SequenceTracker
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, uuid7
from gateway.settings import DeviceSection
from gateway.storage import OutboxUnavailable, SealedOutbox, load_or_create_key
from hardware_sims.gatt_devices import ContinuousOximeter
from tests.support import take
from zoning import standard_plan

SETTLING, DOUBTFUL = {"settling": True}, {"low_perfusion": True}


def chosen(*stream: tuple[int, int | None, dict[str, bool]]) -> tuple[int, int | None, dict[str, bool]] | None:
    """Feed encoded PLX Continuous values; return the one the selection keeps, as it was given."""
    selection = ContinuousSelection()
    encoded = {}
    for spo2, pulse, status in stream:
        data = ContinuousOximeter.encode(spo2, pulse, settling=status.get("settling", False),
                                         low_perfusion=status.get("low_perfusion", False))
        encoded[data] = (spo2, pulse, status)
        selection.offer(uuids.PLX_CONTINUOUS, data)
    choice = selection.choice()
    return None if choice is None else encoded[choice[1]]


def test_the_settled_value_is_kept_when_nothing_worse_was_doubted() -> None:
    assert chosen((88, 104, SETTLING), (95, 84, {}), (96, 81, {})) == (96, 81, {})
    # A doubted value no worse than the settled one does not replace it.
    assert chosen((96, 81, {}), (97, 120, DOUBTFUL), (96, 80, DOUBTFUL)) == (96, 81, {})


def test_a_worse_value_the_device_only_doubted_wins_over_a_milder_settled_one() -> None:
    assert chosen(*[(96, 80, {})] * 5, *[(84, 88, DOUBTFUL)] * 20) == (84, 88, DOUBTFUL)
    # ... whichever came first, and the worst of the doubted ones.
    assert chosen((86, 90, DOUBTFUL), (84, 92, DOUBTFUL), (88, 90, DOUBTFUL), (96, 80, {})) == (84, 92, DOUBTFUL)
    # An early estimate after the device had settled is a doubt, not a superseded estimate.
    assert chosen((96, 81, {}), (70, 140, SETTLING)) == (70, 140, SETTLING)


def test_early_estimates_before_the_device_settles_raise_no_alarm() -> None:
    assert chosen((80, 110, SETTLING), (85, 100, SETTLING), (97, 72, {})) == (97, 72, {})


def test_without_a_settled_value_the_worst_of_what_came() -> None:
    assert chosen((91, 96, SETTLING), (88, 104, SETTLING), (93, 90, SETTLING)) == (88, 104, SETTLING)
    assert chosen((93, 90, SETTLING), (90, 100, DOUBTFUL)) == (90, 100, DOUBTFUL)


def test_a_nan_pulse_does_not_lose_the_saturation() -> None:
    assert chosen((96, 80, {}), (84, None, DOUBTFUL)) == (84, None, DOUBTFUL)


def test_nothing_decodable_gives_the_last_value_for_its_rejection_to_be_counted() -> None:
    selection = ContinuousSelection()
    assert selection.choice() is None
    selection.offer(uuids.PLX_CONTINUOUS, b"\x04\xff\x07")  # NaN saturation, and cut short
    assert selection.choice() == (uuids.PLX_CONTINUOUS, b"\x04\xff\x07")


def glucose_record(sequence: int) -> bytes:
    # flags 0x06 (concentration, mol/L), sequence, base time 2026-11-24 08:30:05, 6.2 mmol/L, finger.
    return bytes([0x06]) + sequence.to_bytes(2, "little") + bytes.fromhex("EA070B18081E05 3EC0 11")


def test_the_glucose_count_stops_at_the_first_record_not_stored() -> None:
    tracker = SequenceTracker()
    assert tracker.request() == bytes([0x01, 0x01])  # the first time: every record
    for sequence, outcome in ((1, Delivery.STORED), (2, Delivery.NOT_A_READING), (3, Delivery.NOT_STORED),
                              (4, Delivery.STORED)):
        tracker.delivered(glucose_record(sequence), outcome)
    assert tracker.last == 2  # record 3 is only in memory: ask for it (and 4) again
    assert tracker.request() == bytes([0x01, 0x03, 0x01, 0x03, 0x00])


def test_a_glucose_record_that_does_not_decode_is_not_asked_for_again() -> None:
    tracker = SequenceTracker(last=6)
    control_solution = glucose_record(7)[:-1] + bytes([0x4A])  # a test of the meter, not of the patient
    tracker.delivered(control_solution, Delivery.NOT_A_READING)
    assert tracker.request() == bytes([0x01, 0x03, 0x01, 0x08, 0x00])


def test_only_a_value_the_gateway_did_not_store_must_stay_on_the_device() -> None:
    assert [d.device_may_forget for d in Delivery] == [True, True, False]


@pytest.fixture
def outbox(tmp_path: Path) -> SealedOutbox:
    return SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"),
                          max_bytes=128 * 1024)


@pytest.fixture
def pipeline(outbox: SealedOutbox) -> Pipeline:
    devices = [DeviceSection(address="F0:5E:1A:00:00:02", kind=MeasurementKind.SPO2),
               DeviceSection(address="F0:5E:1A:00:00:06", kind=MeasurementKind.GLUCOSE)]
    plan = standard_plan(load_profile("standard-copd"), load_advice(), date(2026, 1, 1))
    return Pipeline(patient="p-test", devices={d.address: d for d in devices}, plan=plan, outbox=outbox,
                    zone=ZoneInfo("Europe/Oslo"), clock_tolerance=timedelta(minutes=5), held_limit=2)


SPOT_84 = bytes.fromhex("01 5400 5C00 EA070B18081E05")  # SpO2 84 %, pulse 92, with a time stamp
SPOT_85 = bytes.fromhex("01 5500 5C00 EA070B18081E05")


async def test_the_pipeline_says_stored_only_after_the_commit(pipeline: Pipeline, outbox: SealedOutbox) -> None:
    address = "F0:5E:1A:00:00:02"
    assert await pipeline.deliver(address, uuids.PLX_SPOT_CHECK, SPOT_84) is Delivery.STORED
    assert await pipeline.deliver(address, uuids.PLX_SPOT_CHECK, SPOT_84) is Delivery.STORED  # a duplicate
    assert await pipeline.deliver(address, uuids.PLX_SPOT_CHECK, b"\x01\x54") is Delivery.NOT_A_READING
    assert await pipeline.deliver(address, uuids.CURRENT_TIME, bytes(10)) is Delivery.NOT_A_READING
    assert await pipeline.deliver("F0:AA:BB:CC:DD:01", uuids.PLX_SPOT_CHECK, SPOT_85) is Delivery.NOT_STORED
    # The card is full: held in memory (the limit here is two), then refused; none may be forgotten.
    with pytest.raises(OutboxUnavailable):
        for _ in range(10_000):
            outbox.put(str(uuid7()), os.urandom(600))
    assert await pipeline.deliver(address, uuids.PLX_SPOT_CHECK, SPOT_85) is Delivery.NOT_STORED
    # The device keeps it and sends it again: still not stored, and not held twice.
    assert await pipeline.deliver(address, uuids.PLX_SPOT_CHECK, SPOT_85) is Delivery.NOT_STORED
    assert pipeline.held == 1
    for last_second in (b"\x06", b"\x07"):
        assert await pipeline.deliver(address, uuids.PLX_SPOT_CHECK, SPOT_85[:-1] + last_second) is Delivery.NOT_STORED
    assert pipeline.held == 2 and pipeline.counts["refused_storage_full"] == 1


async def test_a_glucose_hi_without_a_number_is_stored_and_raises_the_urgent_event(pipeline: Pipeline) -> None:
    events: list[tuple[str, dict[str, str | int | float]]] = []
    pipeline.events.subscribe(lambda kind, detail: events.append((kind, detail)))
    # Concentration +INFINITY (FE 07) with sensor status b5 (HI): the meter could not put a number on it.
    hi = bytes.fromhex("0E 0900 EA070B18081E05 FE07 11 2000")
    reading = await take(pipeline, "F0:5E:1A:00:00:06", uuids.GLUCOSE_MEASUREMENT, hi)
    assert reading is not None and reading.measurement.components == {}
    assert events == [("glucose_out_of_range", {"reading": str(reading.id), "range": "above"})]
    # The same record fetched again is a duplicate: no second event.
    assert await pipeline.deliver("F0:5E:1A:00:00:06", uuids.GLUCOSE_MEASUREMENT, hi) is Delivery.STORED
    assert len(events) == 1


def test_pure_users_of_the_drivers_never_import_a_radio_stack() -> None:
    code = ("import sys, zoning.engine, drivers; "
            "print(sorted(m for m in ('bleak', 'bleak_retry_connector') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import drivers; print(drivers.run_session.__module__)"  # the transport, loaded when asked for
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "drivers.transport"
