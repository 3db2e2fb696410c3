"""Bleak's own client and scanner API, through the bumble backend, against simulated GATT devices:
sessions from advertisement to the sealed outbox, and every fault a real home produces."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers import Delivery
from drivers.measurement import MeasurementKind
from gateway.ble import BleBackends, BleDeviceSource
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, uuid7
from gateway.settings import DeviceSection
from gateway.storage import OutboxUnavailable, SealedOutbox, load_or_create_key
from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.blood_pressure import CuffResult
from hardware_sims.gatt_devices import (
    AdvertisingScale,
    BloodPressureCuff,
    ContinuousOximeter,
    GattDevice,
    GlucoseMeter,
    PlxValue,
    PulseOximeter,
    Scale,
    SpotCheck,
    Thermometer,
)
from hardware_sims.radio import VirtualRadio
from zoning import standard_plan

OSLO = ZoneInfo("Europe/Oslo")


@dataclass
class Home:
    radio: VirtualRadio
    pipeline: Pipeline
    outbox: SealedOutbox
    source: BleDeviceSource
    events: list[tuple[str, dict[str, Any]]]  # what the pipeline posted for the uplink
    snapshot: list[dict[str, Any]] | None = None  # what the outbox held when the home was closed

    def stored(self) -> list[dict[str, Any]]:
        if self.snapshot is not None:
            return self.snapshot
        return [json.loads(e.payload) for e in self.outbox.pending(0, 1000)]


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def home(tmp_path: Path, *devices: tuple[GattDevice, dict[str, Any]], radio: VirtualRadio,
               outbox_bytes: int | None = None, card_s: float = 0.0, **source_options: Any) -> AsyncIterator[Home]:
    provisioned = [DeviceSection(address=d.address, kind=MeasurementKind(d.kind), serial=d.serial, **extra)
                   for d, extra in devices]
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"),
                          max_bytes=outbox_bytes)
    plan = standard_plan(load_profile("standard-copd"), load_advice(), date(2026, 1, 1))
    pipeline = Pipeline(patient="p-test", devices={d.address: d for d in provisioned}, plan=plan, outbox=outbox,
                        zone=OSLO, clock_tolerance=timedelta(minutes=5))
    options = {"idle_s": 0.3, "retry_base_s": 0.05, "retry_max_s": 0.2, **source_options}
    source = BleDeviceSource(provisioned, backends=BleBackends(BumbleScanner, BumbleClient, {"radio": radio}),
                             **options)
    events: list[tuple[str, dict[str, Any]]] = []
    pipeline.events.subscribe(lambda kind, detail: events.append((kind, detail)))
    deliver = pipeline.deliver
    if card_s:  # a slow SD card: each value takes this long to reach the outbox

        async def deliver(address: str, characteristic: str, data: bytes) -> Delivery:
            await asyncio.sleep(card_s)
            return await pipeline.deliver(address, characteristic, data)

    task = asyncio.create_task(source.run(deliver))
    h = Home(radio, pipeline, outbox, source, events)
    try:
        yield h
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        h.snapshot = h.stored()
        outbox.close()


async def powered(device: GattDevice) -> GattDevice:
    await device.power_on()
    return device


async def test_cuff_and_oximeter_readings_reach_the_outbox_through_bleak(tmp_path: Path) -> None:
    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio))
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(cuff, BloodPressureCuff) and isinstance(oximeter, PulseOximeter)
    await cuff.measure(CuffResult(128, 82, 72))
    await oximeter.measure(SpotCheck(93, 88))  # taken while the gateway was away: kept in the oximeter
    async with home(tmp_path, (cuff, {}), (oximeter, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 2 and oximeter.memory == [])
        await cuff.measure(CuffResult(86, 54, 118))
        await wait_until(lambda: len(h.stored()) == 3)
    readings = sorted(h.stored(), key=lambda r: (r["type"], r["components"].get("systolic", {}).get("value", 0)))
    assert [(r["type"], r["assessment"]["zone"]) for r in readings] == [
        ("blood_pressure", "red"), ("blood_pressure", "green"), ("spo2", "yellow")]
    assert readings[2]["components"]["spo2"] == {"value": 93.0, "unit": "%"}
    assert all(r["time_source"] == "device_synced" for r in readings)
    assert cuff.time_writes and oximeter.time_writes  # the gateway set both clocks
    assert oximeter.deleted == 1  # deleted on the device only after it was stored
    state = h.source.devices[cuff.address]
    assert state.battery == 90 and state.last_report is not None and state.last_report.model == "SIM-BPM-1"


async def test_a_neighbours_device_is_ignored_counted_and_never_connected(tmp_path: Path) -> None:
    radio = VirtualRadio()
    mine = await powered(Scale(radio))
    neighbours = await powered(Scale(radio, address="F0:AA:BB:CC:DD:01", name="NEIGHBOUR-SCALE"))
    assert isinstance(mine, Scale) and isinstance(neighbours, Scale)
    async with home(tmp_path, (mine, {}), radio=radio) as h:
        await neighbours.measure("104.5")
        await mine.measure("80.2")
        await wait_until(lambda: len(h.stored()) == 1 and h.source.unprovisioned["F0:AA:BB:CC:DD:01"] > 0)
    assert h.stored()[0]["components"]["weight"]["value"] == 80.2
    assert neighbours.connections == 0


async def test_a_link_lost_in_the_middle_of_a_download_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    for value in (97, 96, 95, 96, 97):
        oximeter.clock_offset -= timedelta(hours=1)  # five spot-checks an hour apart
        await oximeter.measure(SpotCheck(value, 70))
    oximeter.faults.disconnect_after = 2  # out of range after two records
    async with home(tmp_path, (oximeter, {}), radio=radio) as h:
        await wait_until(lambda: oximeter.deleted == 5)
    stored = h.stored()
    assert len(stored) == 5 and len({r["id"] for r in stored}) == 5
    assert h.pipeline.counts["duplicate"] == 2  # the two records sent before the link broke came again
    assert h.source.devices[oximeter.address].sessions == 2


async def test_a_malformed_value_is_rejected_and_the_next_one_is_stored(tmp_path: Path) -> None:
    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio))
    assert isinstance(cuff, BloodPressureCuff)
    cuff.faults.malformed_next = True
    await cuff.measure(CuffResult(128, 82, 72))
    await cuff.measure(CuffResult(131, 80, 70))
    async with home(tmp_path, (cuff, {}), radio=radio) as h:
        await wait_until(lambda: h.pipeline.counts["rejected"] == 1 and len(h.stored()) == 1)
    assert h.stored()[0]["components"]["systolic"]["value"] == 131.0


@pytest.mark.parametrize("stuck_at", [datetime(1970, 1, 1), datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 0)])
async def test_a_wrong_device_clock_is_marked_corrected_and_then_set(tmp_path: Path, stuck_at: datetime) -> None:
    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio, disconnects_when_done=False))
    assert isinstance(cuff, BloodPressureCuff)
    cuff.faults.clock = stuck_at  # the batteries were changed
    await cuff.measure(CuffResult(128, 82, 72))
    async with home(tmp_path, (cuff, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 1 and bool(cuff.time_writes))
        await cuff.measure(CuffResult(130, 80, 70))  # measured after the gateway set the clock
        await wait_until(lambda: len(h.stored()) == 2)
    first, second = h.stored()
    assert first["time_source"] == "device_unsynced" and first["device_time"].startswith(str(stuck_at.year))
    assert abs(datetime.fromisoformat(first["effective"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert second["time_source"] == "device_synced"


async def test_a_device_that_stops_answering_does_not_stop_the_others(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    cuff = await powered(BloodPressureCuff(radio))
    assert isinstance(oximeter, PulseOximeter) and isinstance(cuff, BloodPressureCuff)
    oximeter.faults.silent = True
    await oximeter.measure(SpotCheck(96, 70))
    async with home(tmp_path, (oximeter, {}), (cuff, {}), radio=radio, racp_timeout_s=0.5) as h:
        await cuff.measure(CuffResult(128, 82, 72))
        await wait_until(lambda: len(h.stored()) == 1 and h.source.devices[oximeter.address].failures >= 1)
        await cuff.measure(CuffResult(126, 80, 70))
        await wait_until(lambda: len(h.stored()) == 2)
    assert oximeter.memory != []  # nothing was deleted on a device that never confirmed


async def test_a_device_that_resends_its_whole_memory_is_stored_once(tmp_path: Path) -> None:
    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio))
    assert isinstance(cuff, BloodPressureCuff)
    cuff.faults.resends_history = True
    async with home(tmp_path, (cuff, {"profile": "omron-bp-standard"}), radio=radio) as h:
        await cuff.measure(CuffResult(128, 82, 72))
        # The first session over, so the next measurement comes with a new connection (and the memory).
        state = h.source.devices[cuff.address]
        await wait_until(lambda: len(h.stored()) == 1 and cuff.connections == 1 and state.last_report is not None)
        cuff.clock_offset += timedelta(seconds=2)
        await cuff.measure(CuffResult(130, 84, 70))
        await wait_until(lambda: len(h.stored()) == 2 and h.pipeline.counts["duplicate"] == 1)
    assert cuff.connections == 2


async def test_a_shared_scale_assigns_by_user_slot_and_never_guesses(tmp_path: Path) -> None:
    radio = VirtualRadio()
    scale = await powered(Scale(radio))
    assert isinstance(scale, Scale)
    async with home(tmp_path, (scale, {"user": 1}), radio=radio) as h:
        await scale.measure("81.0", user=1)
        await wait_until(lambda: len(h.stored()) == 1)
        scale.clock_offset += timedelta(seconds=1)
        await scale.measure("64.5", user=2)  # the spouse
        scale.clock_offset += timedelta(seconds=1)
        await scale.measure("80.9", user=None)  # stepped on without choosing a user: whose weight?
        await wait_until(lambda: h.pipeline.counts["other_user"] == 1 and h.pipeline.counts["unassigned"] == 1)
    assert [r["components"]["weight"]["value"] for r in h.stored()] == [81.0]
    assert h.pipeline.unassigned[0].measurement.components["weight"].value == Decimal("80.9")


async def test_thermometer_and_the_a_and_d_clock_characteristic(tmp_path: Path) -> None:
    radio = VirtualRadio()
    thermometer = await powered(Thermometer(radio))
    cuff = await powered(BloodPressureCuff(radio, and_style=True, name="A&D_UA-651BLE_SIM"))
    assert isinstance(thermometer, Thermometer) and isinstance(cuff, BloodPressureCuff)
    await thermometer.measure("38.4")
    await cuff.measure(CuffResult(128, 82, 72))
    async with home(tmp_path, (thermometer, {}), (cuff, {"profile": "and-ua-651ble"}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 2 and bool(cuff.time_writes))
    temperature = next(r for r in h.stored() if r["type"] == "body_temperature")
    assert temperature["components"]["temperature"] == {"value": 38.4, "unit": "Cel"}
    assert temperature["assessment"]["zone"] == "yellow"
    assert cuff.time_writes[0] is not None  # a 7-byte Date Time written to 0x2A08 in the BP service


async def test_records_taken_days_ago_keep_their_own_time_when_the_device_clock_is_right(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    for days_ago in (3, 2, 1):  # a week-end away from the gateway, one spot-check a day
        oximeter.clock_offset = -timedelta(days=days_ago)
        await oximeter.measure(SpotCheck(96, 70))
    oximeter.clock_offset = timedelta(0)
    async with home(tmp_path, (oximeter, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 3)
    ages = sorted(round((datetime.now(UTC) - datetime.fromisoformat(r["effective"])) / timedelta(days=1))
                  for r in h.stored())
    assert ages == [1, 2, 3]
    assert all(r["time_source"] == "device_synced" for r in h.stored())


async def test_an_advertising_scale_weighing_is_stored_once_however_often_it_is_broadcast(tmp_path: Path) -> None:
    radio = VirtualRadio()
    scale = AdvertisingScale(radio, repeats=6)
    await scale.power_on()
    async with home(tmp_path, (scale, {"profile": "xiaomi-mi-scale"}), radio=radio) as h:  # type: ignore[arg-type]
        await scale.weigh("82.35")
        await wait_until(lambda: len(h.stored()) == 1 and h.pipeline.counts["duplicate"] >= 3)
    (reading,) = h.stored()
    assert reading["components"]["weight"] == {"value": 82.35, "unit": "kg"}
    assert h.pipeline.counts["not_final"] >= 2  # the settling values were seen and not stored


async def test_a_scanner_that_goes_silent_is_restarted_by_the_watchdog(tmp_path: Path) -> None:
    from gateway.ble import ScanWatchdog

    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio))
    assert isinstance(cuff, BloodPressureCuff)
    async with home(tmp_path, (cuff, {}), radio=radio, watchdog=ScanWatchdog(quiet_s=0.3),
                    watchdog_interval_s=0.05) as h:
        await wait_until(lambda: radio.scanning)
        radio.scanning_stalled = True  # BlueZ stops reporting advertisements, without an error
        await cuff.measure(CuffResult(128, 82, 72))
        await wait_until(lambda: len(h.stored()) == 1)
    assert h.source.scan_restarts >= 1


async def test_a_glucose_meter_is_asked_only_for_records_after_the_last_one_we_have(tmp_path: Path) -> None:
    radio = VirtualRadio()
    meter = await powered(GlucoseMeter(radio, battery=8))
    assert isinstance(meter, GlucoseMeter)
    for mmol in ("5.4", "7.9", "6.2"):
        meter.clock_offset -= timedelta(hours=3)
        await meter.measure(mmol)
    async with home(tmp_path, (meter, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 3 and h.source.devices[meter.address].last_sequence == 3)
        meter.clock_offset = timedelta(0)
        await meter.measure("8.1")
        await wait_until(lambda: len(h.stored()) == 4 and h.source.devices[meter.address].last_sequence == 4)
        await asyncio.sleep(0.3)  # time for a reconnection the meter must not call for
    # First every record, then sequence number 4 and on, and nothing more: a meter that keeps its logbook
    # does not advertise for records the gateway already has (that loop once raced this test's end).
    assert meter.requests == [bytes([0x01, 0x01]), bytes([0x01, 0x03, 0x01, 0x04, 0x00])]
    assert len(meter.memory) == 4 and meter.deleted == 0  # the meter keeps its logbook
    assert sorted(r["components"]["glucose"]["value"] for r in h.stored()) == [5.4, 6.2, 7.9, 8.1]
    assert h.source.devices[meter.address].battery == 8  # low battery: tracked for the status


async def test_records_that_take_long_to_store_are_neither_cut_off_nor_waited_for_twice(tmp_path: Path) -> None:
    # Once, the storing of the records that came just before the device's "done" ran inside a 50 ms poll
    # timeout: on a busy machine the timeout cancelled it halfway, and the session then waited for the
    # response it had already read. Storing is never timed now; only the device's silence is.
    radio = VirtualRadio()
    meter = await powered(GlucoseMeter(radio))
    assert isinstance(meter, GlucoseMeter)
    for mmol in ("5.4", "7.9", "6.2"):
        await meter.measure(mmol)
    async with home(tmp_path, (meter, {}), radio=radio, card_s=0.15, racp_timeout_s=2.0) as h:
        state = h.source.devices[meter.address]
        await wait_until(lambda: state.last_report is not None or state.failures > 0)
    assert state.failures == 0 and state.last_report is not None and state.last_report.complete
    assert state.last_sequence == 3 and h.pipeline.counts["stored"] == 3 and len(h.stored()) == 3


async def test_bluez_transient_connection_errors_are_retried_by_bleak_retry_connector(tmp_path: Path) -> None:
    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio))
    assert isinstance(cuff, BloodPressureCuff)
    # Three attempts in a row end as BlueZ ends them on a busy air: more than our own two attempts.
    radio.connect_errors = ["le-connection-abort-by-local"] * 3
    await cuff.measure(CuffResult(128, 82, 72))
    async with home(tmp_path, (cuff, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 1)
    state = h.source.devices[cuff.address]
    assert radio.connect_errors == [] and state.failures == 0 and state.sessions == 1


async def test_a_glucose_meter_hi_is_stored_flagged_and_sent_as_an_urgent_event(tmp_path: Path) -> None:
    radio = VirtualRadio()
    meter = await powered(GlucoseMeter(radio))
    assert isinstance(meter, GlucoseMeter)
    await meter.measure("33.3", out_of_range="HI")  # the meter shows "HI": beyond what it can read
    await meter.measure("1.1", out_of_range="LO")
    async with home(tmp_path, (meter, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 2 and len(h.events) == 2)
    hi, lo = sorted(h.stored(), key=lambda r: r["components"]["glucose"]["value"], reverse=True)
    assert hi["flags"] == ["above_measuring_range"] and hi["components"]["glucose"]["value"] == 33.3
    assert lo["flags"] == ["below_measuring_range"]
    assert h.pipeline.counts["rejected"] == 0  # never again a silent rejection with a log line
    assert sorted(h.events, key=lambda e: str(e[1]["range"])) == [
        ("glucose_out_of_range", {"reading": hi["id"], "range": "above"}),
        ("glucose_out_of_range", {"reading": lo["id"], "range": "below"}),
    ]  # the reading's id and the direction: no values in an event


async def test_a_device_that_lost_its_bond_is_paired_again_and_nothing_is_lost(tmp_path: Path) -> None:
    radio = VirtualRadio()
    cuff = await powered(BloodPressureCuff(radio, and_style=True, requires_bond=True))
    assert isinstance(cuff, BloodPressureCuff)
    async with home(tmp_path, (cuff, {"profile": "and-ua-651ble"}), radio=radio) as h:
        state = h.source.devices[cuff.address]
        await cuff.measure(CuffResult(128, 82, 72))
        # Paired (Just Works, bonded), then encrypted; and the session over (else the next measurement
        # would still go out on the old, encrypted link).
        await wait_until(lambda: len(h.stored()) == 1 and state.last_report is not None)
        await cuff.forget_bond()  # batteries out, or paired to a phone: the cuff forgot the gateway
        cuff.clock_offset += timedelta(seconds=2)
        await cuff.measure(CuffResult(131, 84, 70))
        # The status's "put it in pairing mode" clears once the new pairing's session is over.
        await wait_until(lambda: len(h.stored()) == 2 and state.sessions >= 2 and not h.source.bonds.needs_pairing)
    assert [r["components"]["systolic"]["value"] for r in h.stored()] == [128.0, 131.0]


async def test_a_continuous_oximeter_gives_one_reading_per_measurement_not_one_per_second(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(ContinuousOximeter(radio))
    assert isinstance(oximeter, ContinuousOximeter)
    settling = [(88, 104, True), (91, 96, True), (93, 90, True)]
    stable = [(95, 84, False), (96, 82, False), (96, 81, False)]
    async with home(tmp_path, (oximeter, {"profile": "plx-continuous"}), radio=radio) as h:
        await oximeter.finger_in([*settling, *stable])
        await wait_until(lambda: len(h.stored()) == 1 and h.source.devices[oximeter.address].sessions == 1)
    (reading,) = h.stored()
    # The early estimates while it settled are superseded by what it settled on: no false alarm.
    assert (reading["components"]["spo2"]["value"], reading["components"]["pulse"]["value"]) == (96.0, 81.0)
    assert reading["assessment"]["zone"] == "green" and reading["flags"] == []
    assert reading["time_source"] == "gateway_receive"  # continuous values carry no time stamp


@pytest.mark.parametrize(("stream", "kept", "flag"), [
    # The hazard review's case: five good 96s, then twenty 84s the device flags low perfusion.
    ([PlxValue(96, 80)] * 5 + [PlxValue(84, 88, low_perfusion=True)] * 20, (84.0, 88.0), "low_perfusion"),
    # Settled at 96, then the value falls while the device calls it "measurement ongoing" again.
    ([PlxValue(93, 90, settling=True), PlxValue(96, 81), PlxValue(70, 140, settling=True)], (70.0, 140.0),
     "provisional"),
])
async def test_a_continuous_oximeter_never_keeps_a_milder_value_over_a_worse_one_it_only_doubted(
    tmp_path: Path, stream: list[PlxValue], kept: tuple[float, float], flag: str
) -> None:
    radio = VirtualRadio()
    oximeter = await powered(ContinuousOximeter(radio))
    assert isinstance(oximeter, ContinuousOximeter)
    async with home(tmp_path, (oximeter, {"profile": "plx-continuous"}), radio=radio) as h:
        await oximeter.finger_in(stream)
        await wait_until(lambda: len(h.stored()) == 1 and h.source.devices[oximeter.address].sessions == 1)
    (reading,) = h.stored()
    assert (reading["components"]["spo2"]["value"], reading["components"]["pulse"]["value"]) == kept
    assert reading["flags"] == [flag]
    # Red stays red, and the flag asks the patient for a control measurement at once.
    assert reading["assessment"]["zone"] == "red"
    assert f"device: {flag}" in reading["assessment"]["control"]


FULL_CARD = 128 * 1024


def fill_outbox(tmp_path: Path, bound: int) -> list[str]:
    """The card is full: fill an outbox bounded at `bound` bytes until it refuses, as a full disk does."""
    full = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"), max_bytes=bound)
    ids: list[str] = []
    with pytest.raises(OutboxUnavailable):
        for _ in range(10_000):
            record = str(uuid7())
            full.put(record, json.dumps({"filler": os.urandom(300).hex()}).encode())
            ids.append(record)
    full.close()
    return ids


async def test_an_oximeter_keeps_its_red_reading_until_the_gateway_has_committed_it(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    await oximeter.measure(SpotCheck(84, 92))
    fill_outbox(tmp_path, FULL_CARD)
    async with home(tmp_path, (oximeter, {}), radio=radio, outbox_bytes=FULL_CARD) as h:
        state = h.source.devices[oximeter.address]
        await wait_until(lambda: state.last_report is not None)
        assert h.pipeline.held >= 1  # the reading exists only in memory
    assert state.last_report is not None and state.last_report.not_stored == 1
    assert not state.last_report.records_deleted
    assert oximeter.deleted == 0 and len(oximeter.memory) == 1  # a reboot now would lose nothing
    assert bytes([0x02, 0x01]) not in oximeter.requests  # the device was never asked to delete

    # After the restart, with room on the card: stored first, only then deleted on the device.
    deleted_when_stored: list[int] = []
    async with home(tmp_path, (oximeter, {}), radio=radio) as h:
        h.pipeline.readings.subscribe(lambda _r, _a: deleted_when_stored.append(oximeter.deleted))
        await oximeter.advertise()  # switched on again
        await wait_until(lambda: oximeter.deleted == 1)
    (reading,) = [r for r in h.stored() if r.get("type") == "spo2"]
    assert reading["components"]["spo2"]["value"] == 84.0 and reading["assessment"]["zone"] == "red"
    assert deleted_when_stored == [0] and oximeter.memory == []


async def test_an_oximeter_is_erased_once_its_held_reading_reaches_the_outbox_without_a_restart(
    tmp_path: Path,
) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    await oximeter.measure(SpotCheck(84, 92))
    fillers = fill_outbox(tmp_path, FULL_CARD)
    async with home(tmp_path, (oximeter, {}), radio=radio, outbox_bytes=FULL_CARD) as h:
        state = h.source.devices[oximeter.address]
        await wait_until(lambda: state.last_report is not None and h.pipeline.held == 1)
        assert oximeter.deleted == 0
        h.outbox.acknowledge(fillers)  # the central service confirmed what filled the card: room again
        await h.pipeline.store_held()  # what the runtime does every 5 s
        assert h.pipeline.held == 0
        await wait_until(lambda: oximeter.deleted == 1)  # the device's next visit: a duplicate, now stored
    (reading,) = [r for r in h.stored() if r.get("type") == "spo2"]
    assert reading["components"]["spo2"]["value"] == 84.0 and h.pipeline.counts["stored"] == 1


async def test_a_measurement_taken_during_the_download_is_not_deleted_unseen(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    await oximeter.measure(SpotCheck(96, 70))
    oximeter.clock_offset += timedelta(minutes=1)
    oximeter.faults.record_after_report = oximeter.encode(SpotCheck(88, 95))  # measured meanwhile
    async with home(tmp_path, (oximeter, {}), radio=radio) as h:
        await wait_until(lambda: oximeter.deleted == 2)
    assert sorted(r["components"]["spo2"]["value"] for r in h.stored()) == [88.0, 96.0]
    count, delete = bytes([0x04, 0x01]), bytes([0x02, 0x01])
    # First session: reported 1, the device then holds 2: nothing deleted. Second: both fetched, deleted.
    assert oximeter.requests == [bytes([0x01, 0x01]), count, bytes([0x01, 0x01]), count, delete]


async def test_an_oximeter_spot_check_with_a_nan_pulse_keeps_its_saturation(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    await oximeter.measure(SpotCheck(84, None))  # the pulse sent as NaN
    async with home(tmp_path, (oximeter, {}), radio=radio) as h:
        await wait_until(lambda: len(h.stored()) == 1 and oximeter.deleted == 1)
    (reading,) = h.stored()
    assert reading["components"] == {"spo2": {"value": 84.0, "unit": "%"}}
    assert "NaN" in reading["absent"]["pulse"]
    assert reading["assessment"]["zone"] == "red" and h.pipeline.counts["rejected"] == 0
