"""Readings that do not reach the nurse must at least be counted where a technician looks (issue 9.8),
a shared device without the patient's slot is a configuration error (9.7), and the status says when the
gateway went away: a clean stop and the broker's Last Will after a kill -9, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiomqtt

from drivers import uuids
from gateway.service import Gateway, IdleDeviceSource
from gateway.settings import build_settings
from hardware_sims import encoding
from protocol import BrokerSettings, Status, Topics, make_client
from tests.conftest import Mosquitto
from tests.support import ROOT, config_for, take

CUFF = "F0:5E:1A:00:00:01"
SCALE = "F0:5E:1A:00:00:31"


def weighing(kg: str, user: int | None) -> bytes:
    stamp = datetime.now().replace(microsecond=0)
    value = bytes([0x02 | (0x04 if user is not None else 0)]) + int(Decimal(kg) / Decimal("0.005")).to_bytes(
        2, "little") + encoding.date_time(stamp)
    return value + (bytes([user]) if user is not None else b"")


async def statuses_until(port: int, topic: str, done: Callable[[Status], bool], timeout: float = 15) -> Status:
    async with make_client(BrokerSettings(port=port, insecure_dev=True), "technician-view") as viewer:
        await viewer.subscribe(topic, qos=1)
        async with asyncio.timeout(timeout):
            message: aiomqtt.Message
            async for message in viewer.messages:
                status = Status.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
                if done(status):
                    return status
    raise AssertionError("unreachable")


async def test_rejected_and_unassigned_counts_and_a_shared_scale_without_a_slot_are_in_the_status(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    gateway = Gateway(build_settings({
        "gateway": {"id": "gw-status", "tenant": "t", "patient": "p-status", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "insecure_dev": True},
        "devices": [{"address": CUFF, "kind": "blood_pressure"}, {"address": SCALE, "kind": "body_weight"}],
    }), IdleDeviceSource())
    sink = functools.partial(take, gateway.pipeline)
    await sink(CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, b"\x00\x01")  # truncated: rejected
    # A household scale that tells users apart, provisioned as if it had one user: the spouse's 64.5 kg
    # must not become the patient's weight.
    assert await sink(SCALE, uuids.WEIGHT_MEASUREMENT, weighing("64.5", user=2)) is None
    assert gateway.outbox.depth() == 0
    task = asyncio.create_task(gateway.run())
    try:
        status = await statuses_until(mosquitto.port, Topics("t", "gw-status").status, lambda s: s.state == "online")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (status.rejected, status.unassigned) == (1, 1)
    assert any(SCALE in fault and "user slot" in fault for fault in status.faults), status.faults


async def test_a_clean_stop_says_offline_with_the_time(tmp_path: Path, mosquitto: Mosquitto) -> None:
    gateway = Gateway(build_settings({
        "gateway": {"id": "gw-stop", "tenant": "t", "patient": "p-stop", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "insecure_dev": True},
    }), IdleDeviceSource())
    task = asyncio.create_task(gateway.run())
    async with asyncio.timeout(10):
        await gateway.uplink.connected.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stopped = datetime.now(UTC)
    offline = await statuses_until(mosquitto.port, Topics("t", "gw-stop").status, lambda s: True)
    assert offline.state == "offline" and not offline.last_will
    assert offline.at is not None and stopped - timedelta(seconds=10) <= offline.at <= stopped


async def test_the_last_will_says_offline_when_the_gateway_is_killed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = config_for(tmp_path, mosquitto.port)
    topic = Topics("demo-kommune", "gw-0001").status
    with (tmp_path / "gateway.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config), cwd=ROOT,
            stdout=log, stderr=log)
    try:
        online = await statuses_until(mosquitto.port, topic, lambda s: s.state == "online", timeout=60)
        assert online.at is not None
        process.send_signal(signal.SIGKILL)  # no DISCONNECT: only the broker can say it is gone
        async with asyncio.timeout(10):
            await process.wait()
        offline = await statuses_until(mosquitto.port, topic, lambda s: s.state == "offline", timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert offline.last_will and offline.gateway == "gw-0001"
    # Composed when the connection opened (the will cannot be rewritten later): the gateway was still
    # online then, so `at` is the last moment it vouches for, never after the online status.
    assert offline.at is not None and offline.at <= online.at
