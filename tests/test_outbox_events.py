"""Events are durable: sealed in the outbox, sent on up/events, deleted only on the central ack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from central.embedded import EmbeddedCentral
from gateway.storage import SealedOutbox, load_or_create_key
from gateway.uplink import Uplink
from protocol import BrokerSettings, Topics
from tests.conftest import Mosquitto


def open_store(folder: Path) -> SealedOutbox:
    return SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))


def uplink_for(outbox: SealedOutbox, port: int) -> Uplink:
    return Uplink(outbox, BrokerSettings(port=port, insecure_dev=True), Topics("test-kommune", "gw-ev-1"),
                  version="test", ack_timeout_s=1)


def central_for(tmp_path: Path, port: int) -> EmbeddedCentral:
    central = EmbeddedCentral(BrokerSettings(port=port, insecure_dev=True), tmp_path / "central.sqlite3")
    central.provision("gw-ev-1", tenant="test-kommune", patient="p-test")
    return central


async def wait_until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_an_event_survives_a_restart_while_offline_and_leaves_only_on_its_ack(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    mosquitto.stop()  # offline: no broker at all
    outbox = open_store(tmp_path)
    uplink = uplink_for(outbox, mosquitto.port)
    running = asyncio.create_task(uplink.run())
    uplink.post_event("storage_fault", {"reason": "test", "held": 3})
    await wait_until(lambda: len(outbox.pending_events(0, 10)) == 1)
    running.cancel()  # the gateway stops (or is killed) before it was ever online
    await asyncio.gather(running, return_exceptions=True)
    outbox.close()
    mosquitto.start()

    central = store = central_for(tmp_path, mosquitto.port)
    outbox = open_store(tmp_path)  # a new process: nothing of the event is left in memory
    (stored,) = outbox.pending_events(0, 10)
    uplink = uplink_for(outbox, mosquitto.port)
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        u = tasks.create_task(uplink.run())
        await wait_until(lambda: len(store.events()) == 1 and outbox.pending_events(0, 10) == [])
        u.cancel()
        c.cancel()
    (event,) = store.events()
    assert event["id"] == stored.id and event["kind"] == "storage_fault"
    assert event["detail"] == {"reason": "test", "held": 3}
    assert json.loads(stored.payload)["gateway"] == "gw-ev-1"
    assert outbox.depth() == 0
    outbox.close()
    central.close()


async def test_an_event_not_acknowledged_is_sent_again_and_stored_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    outbox = open_store(tmp_path)
    uplink = uplink_for(outbox, mosquitto.port)
    central = store = central_for(tmp_path, mosquitto.port)
    async with asyncio.TaskGroup() as tasks:
        u = tasks.create_task(uplink.run())
        await uplink.connected.wait()
        uplink.post_event("measurement_overdue", {"due": "2026-11-20", "days_overdue": 3, "cadence": "weekly"})
        await wait_until(lambda: len(outbox.pending_events(0, 10)) == 1)
        await asyncio.sleep(1.2)  # sent, no central service: no ack, so it stays
        assert len(outbox.pending_events(0, 10)) == 1
        c = tasks.create_task(central.run())
        await wait_until(lambda: outbox.pending_events(0, 10) == [], timeout=30)
        u.cancel()
        c.cancel()
    assert [e["kind"] for e in store.events()] == ["measurement_overdue"]
    outbox.close()
    central.close()
