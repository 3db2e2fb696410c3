"""The blood pressure slice end to end against a real Mosquitto: simulated cuff -> driver -> zoning ->
sealed outbox -> MQTT -> reference central receiver -> ack -> outbox drained."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from central.embedded import EmbeddedCentral
from gateway.service import Gateway
from gateway.settings import build_settings
from hardware_sims.blood_pressure import CuffResult
from hardware_sims.home import DEMO_SCENARIO, SimulatedHome
from protocol import BrokerSettings
from tests.conftest import Mosquitto
from tests.support import take

# Zones the standard profile gives DEMO_SCENARIO, worked out by hand from the profile's bounds.
EXPECTED_ZONES = ["green", "green", "yellow", "yellow", "red", "green"]


def distinct_scenario(rounds: int) -> list[CuffResult]:
    """DEMO_SCENARIO repeated, each round with another mean pressure so no two values are the same bytes.

    A cuff's time stamp has whole seconds: two identical values in one second are one measurement
    sent twice, and the gateway rightly keeps one. Real cuffs cannot measure that fast; tests do."""
    return [replace(r, systolic=r.systolic + k) for k in range(rounds) for r in DEMO_SCENARIO]


def gateway_for(
    tmp_path: Path, port: int, source: SimulatedHome, outbox: dict[str, Any] | None = None, **sync: Any
) -> Gateway:
    settings = build_settings({
        "outbox": outbox or {},
        "gateway": {"id": "gw-test-1", "tenant": "test-kommune", "patient": "p-test", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": port, "insecure_dev": True},
        "sync": {"ack_timeout_s": 1, "batch_size": 4, **sync},
        "device_source": "simulated-home",
        "devices": [{"address": d.address, "kind": d.kind, "serial": d.serial} for d in source.devices],
    })
    return Gateway(settings, source)


def central_for(tmp_path: Path, port: int) -> EmbeddedCentral:
    """The central service with this file's gateway provisioned (tenancy comes from the registry)."""
    central = EmbeddedCentral(BrokerSettings(port=port, insecure_dev=True), tmp_path / "central.sqlite3")
    central.provision("gw-test-1", tenant="test-kommune", patient="p-test")
    return central


async def wait_until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_readings_arrive_exactly_once_with_zones_and_the_outbox_drains(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    n = 3 * len(DEMO_SCENARIO)
    central = central_for(tmp_path, mosquitto.port)
    source = SimulatedHome(interval_s=0.005, count=n, scenario=distinct_scenario(3))
    gateway = gateway_for(tmp_path, mosquitto.port, source)
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        g = tasks.create_task(gateway.run())
        await wait_until(lambda: source.sent == n and central.count() == n and gateway.outbox.depth() == 0)
        g.cancel()
        c.cancel()
    readings = central.readings()
    assert len({r.id for r in readings}) == n
    assert [r.assessment.zone for r in readings] == EXPECTED_ZONES * 3
    assert all(r.patient == "p-test" and r.time_source == "device_synced" for r in readings)
    assert readings[4].assessment.rules[0].rule.startswith("bp.systolic.red")
    assert gateway.pipeline.counts["stored"] == n


async def test_nothing_is_lost_while_the_central_service_and_the_broker_are_away(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    n = 12
    central = central_for(tmp_path, mosquitto.port)
    source = SimulatedHome(interval_s=0.005, count=n, scenario=distinct_scenario(2))
    gateway = gateway_for(tmp_path, mosquitto.port, source)
    async with asyncio.TaskGroup() as tasks:
        g = tasks.create_task(gateway.run())
        # Phase 1: no central service. The broker accepts every batch, but nothing is acknowledged.
        await wait_until(lambda: source.sent == n and gateway.outbox.depth() == n)
        await asyncio.sleep(1.5)
        assert gateway.outbox.depth() == n
        # Phase 2: the broker goes down too, then comes back on the same port.
        mosquitto.stop()
        await asyncio.sleep(0.5)
        mosquitto.start()
        c = tasks.create_task(central.run())
        # Phase 3: re-sends after the reconnect and the ack timeout deliver everything, once.
        await wait_until(lambda: gateway.outbox.depth() == 0 and central.count() == n, timeout=60)
        g.cancel()
        c.cancel()
    assert len({r.id for r in central.readings()}) == n
    assert gateway.uplink.resends >= 1


async def test_values_from_a_neighbours_device_are_ignored(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ours = SimulatedHome(interval_s=0.005, count=2)
    gateway = gateway_for(tmp_path, mosquitto.port, ours)
    neighbour = SimulatedHome(interval_s=0.005, count=3, address="F0:5E:1A:00:00:99")
    await neighbour.run(gateway.pipeline.deliver)
    await ours.run(gateway.pipeline.deliver)
    assert gateway.outbox.depth() == 2
    assert gateway.pipeline.unprovisioned == Counter({"F0:5E:1A:00:00:99": 3})
    gateway.outbox.close()


async def test_the_same_measurement_fetched_again_keeps_one_identity(tmp_path: Path, mosquitto: Mosquitto) -> None:
    source = SimulatedHome(interval_s=0.005, count=3)
    gateway = gateway_for(tmp_path, mosquitto.port, source)
    await source.run(gateway.pipeline.deliver)
    # The cuff sends its whole memory again, as Omron and A&D cuffs do on every connection.
    for value in source.monitor.history:
        await take(gateway.pipeline, source.monitor.address, "00002a35-0000-1000-8000-00805f9b34fb", value)
    assert gateway.outbox.depth() == 3
    assert gateway.pipeline.counts["duplicate"] == 3
    gateway.outbox.close()


async def test_a_wrong_device_clock_is_marked_and_corrected_not_silently_redated(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    from datetime import timedelta

    source = SimulatedHome(interval_s=0.005, count=1, clock_offset=-timedelta(days=3))
    gateway = gateway_for(tmp_path, mosquitto.port, source)
    reading = None

    async def keep(address: str, characteristic: str, data: bytes) -> None:
        nonlocal reading
        reading = await take(gateway.pipeline, address, characteristic, data)

    await source.run(keep)
    assert reading is not None
    assert reading.time_source == "device_unsynced"
    assert reading.clock_correction_s is not None and abs(reading.clock_correction_s - 3 * 86400) < 5
    assert abs((reading.effective - reading.received).total_seconds()) < 5
    assert reading.measurement.device_time is not None  # the device's own time is kept
    gateway.outbox.close()


async def test_status_is_online_while_running_and_offline_after_a_stop(tmp_path: Path, mosquitto: Mosquitto) -> None:
    import aiomqtt

    from protocol import Status, Topics, make_client

    source = SimulatedHome(interval_s=0.005, count=2)
    gateway = gateway_for(tmp_path, mosquitto.port, source)
    topic = Topics("test-kommune", "gw-test-1").status

    async def retained_status() -> Status:
        async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "nurse-view") as viewer:
            await viewer.subscribe(topic, qos=1)
            async with asyncio.timeout(5):
                message: aiomqtt.Message = await anext(aiter(viewer.messages))
            return Status.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]

    task = asyncio.create_task(gateway.run())
    await wait_until(lambda: gateway.uplink.connected.is_set())
    online = await retained_status()
    assert online.state == "online" and online.gateway == "gw-test-1" and online.outbox_depth is not None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert (await retained_status()).state == "offline"


async def test_disk_full_holds_readings_in_memory_reports_it_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    import aiomqtt

    from protocol import Status, Topics, make_client

    source = SimulatedHome(interval_s=0.001, count=12, scenario=distinct_scenario(2))
    gateway = gateway_for(tmp_path, mosquitto.port, source, status_interval_s=0.1)
    gateway.pipeline._held_limit = 4
    deliver = gateway.pipeline.deliver
    values: list[tuple[str, str, bytes]] = []

    async def record(address: str, characteristic: str, data: bytes) -> None:
        values.append((address, characteristic, data))

    await source.run(record)
    await deliver(*values[0])
    # Injected disk full: SQLite answers SQLITE_FULL exactly as on a full card once the file may not grow.
    db = gateway.outbox._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")
    for value in values[1:]:
        await deliver(*value)
    taken = gateway.outbox.depth()  # readings that still fitted in the file's free pages
    assert 1 <= taken <= 8
    assert gateway.pipeline.held == 4  # the bound
    assert gateway.pipeline.counts["refused_storage_full"] == 12 - taken - 4
    assert "full" in (gateway.pipeline.storage_fault or "")
    assert len(gateway.outbox.pending(0, 100)) == taken  # what was stored is untouched

    async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "technician") as viewer:
        await viewer.subscribe(Topics("test-kommune", "gw-test-1").status, qos=1)
        task = asyncio.create_task(gateway.uplink.run())
        async with asyncio.timeout(10):
            message: aiomqtt.Message = await anext(aiter(viewer.messages))
        assert "full" in Status.model_validate_json(bytes(message.payload)).faults[0]  # type: ignore[arg-type,unused-ignore]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    db.execute("PRAGMA max_page_count = 1073741823")  # space returns
    await gateway.pipeline.store_held()
    assert gateway.pipeline.held == 0 and gateway.pipeline.storage_fault is None
    stored = [e.payload for e in gateway.outbox.pending(0, 100)]
    assert len(stored) == taken + 4
    expected_order = [v[2] for v in values[: taken + 4]]
    systolic = [json.loads(p)["components"]["systolic"]["value"] for p in stored]
    assert systolic == [float(int.from_bytes(v[1:3], "little")) for v in expected_order]  # order kept
    gateway.outbox.close()


async def test_a_bit_flipped_on_the_card_quarantines_one_record_with_an_event_and_the_rest_go(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    import aiomqtt

    from protocol import Event, Status, Topics, make_client

    source = SimulatedHome(interval_s=0.001, count=6, scenario=distinct_scenario(1))
    gateway = gateway_for(tmp_path, mosquitto.port, source)
    values: list[tuple[str, str, bytes]] = []

    async def record(address: str, characteristic: str, data: bytes) -> None:
        values.append((address, characteristic, data))

    await source.run(record)
    for value in values:
        await gateway.pipeline.deliver(*value)
    victim = gateway.outbox._db.execute("SELECT seq, sealed FROM outbox ORDER BY seq LIMIT 1 OFFSET 2").fetchone()
    gateway.outbox.depth()  # the start-up count (a read snapshot on its own connection) is done: nothing
    for _ in range(50):  # else holds the WAL when it is truncated; a reader thread may still hold a lock
        try:
            gateway.outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            break
        except sqlite3.OperationalError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the WAL could not be checkpointed in 5 s")
    gateway.outbox.close()
    # The power is off; one bit of one stored record rots on the card.
    card = tmp_path / "gw" / "outbox.sqlite3"
    image = bytearray(card.read_bytes())
    at = image.index(bytes(victim[1])) + 40
    image[at] ^= 0x10
    card.write_bytes(bytes(image))

    central = central_for(tmp_path, mosquitto.port)
    small = {"max_size_mb": 1, "alert_percent": 1}  # so the alert fires with six readings
    gateway = gateway_for(tmp_path, mosquitto.port, SimulatedHome(count=0), outbox=small)
    gateway.health_interval_s = 0.1
    topics = Topics("test-kommune", "gw-test-1")
    events: list[Event] = []
    statuses: list[Status] = []
    async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "technician") as viewer:
        await viewer.subscribe(topics.events, qos=1)
        await viewer.subscribe(topics.status, qos=1)

        async def watch() -> None:
            message: aiomqtt.Message
            async for message in viewer.messages:
                payload = bytes(message.payload)  # type: ignore[arg-type,unused-ignore]
                if message.topic.matches(topics.events):
                    events.append(Event.model_validate_json(payload))
                else:
                    statuses.append(Status.model_validate_json(payload))

        async with asyncio.TaskGroup() as tasks:
            w = tasks.create_task(watch())
            c = tasks.create_task(central.run())
            await central.ready.wait()
            g = tasks.create_task(gateway.run())
            await wait_until(lambda: central.count() == 5 and gateway.outbox.depth() == 0
                             and any(s.quarantined == 1 for s in statuses)
                             and {"outbox_record_quarantined", "outbox_near_limit"} <= {e.kind for e in events})
            g.cancel()
            c.cancel()
            w.cancel()
    (quarantined,) = [e for e in events if e.kind == "outbox_record_quarantined"]
    assert quarantined.detail["record"] == victim[0] and "altered or corrupted" in str(quarantined.detail["reason"])
    assert all("p-test" not in e.model_dump_json() for e in events)  # no patient data in events
    assert any(s.faults and "% full" in s.faults[0] for s in statuses)
    sent = [int.from_bytes(v[2][1:3], "little") for v in values]
    assert sorted(int(r.components["systolic"].value) for r in central.readings()) == sorted(sent[:2] + sent[3:])


async def test_an_overdue_measurement_becomes_an_event(tmp_path: Path, mosquitto: Mosquitto) -> None:
    from datetime import UTC, date, datetime, timedelta

    import aiomqtt

    from drivers.measurement import MeasurementKind
    from protocol import Event, Topics, make_client
    from zoning import PastReading, Zone

    gateway = gateway_for(tmp_path, mosquitto.port, SimulatedHome(count=0))
    gateway.health_interval_s = 0.1
    # Enrolled in January, stable (weekly schedule), last measured ten days ago: three days overdue.
    gateway.pipeline.use_plan(gateway.pipeline.plan.model_copy(update={"enrolled": date(2026, 1, 5)}))
    last = datetime.now(UTC) - timedelta(days=10)
    gateway.pipeline.history = [PastReading(id="r1", kind=MeasurementKind.BLOOD_PRESSURE, values={},
                                            effective=last, zone=Zone.GREEN)]
    topics = Topics("test-kommune", "gw-test-1")
    async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "nurse-view") as viewer:
        await viewer.subscribe(topics.events, qos=1)
        task = asyncio.create_task(gateway.run())
        async with asyncio.timeout(10):
            message: aiomqtt.Message = await anext(aiter(viewer.messages))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    event = Event.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
    assert event.kind == "measurement_overdue"
    assert event.detail["cadence"] == "weekly" and event.detail["days_overdue"] in (2, 3, 4)  # local midnight
