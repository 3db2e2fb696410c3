"""The retained status lists the provisioned devices also when the source is the simulated home (the
demo's): it was empty, so a technician looking at a demo or a test kit saw no device at all."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hardware_sims.home import SimulatedHome
from protocol import BrokerSettings, Status, Topics, make_client
from tests.conftest import Mosquitto
from tests.test_delivery_mosquitto import gateway_for, wait_until


async def test_status_lists_the_simulated_devices_with_when_they_were_last_heard(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    gateway = gateway_for(tmp_path, mosquitto.port, SimulatedHome(interval_s=0.01, count=2))
    statuses: list[Status] = []
    async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "technician") as viewer:
        await viewer.subscribe(Topics("test-kommune", "gw-test-1").status, qos=1)

        async def listen() -> None:
            async for message in viewer.messages:
                statuses.append(Status.model_validate_json(bytes(message.payload)))  # type: ignore[arg-type,unused-ignore]

        listening = asyncio.create_task(listen())
        task = asyncio.create_task(gateway.run())
        await wait_until(lambda: gateway.pipeline.counts["stored"] == 2 and bool(statuses))
        gateway.uplink.refresh_status()
        await wait_until(lambda: len(statuses) >= 2)  # the status sent at once on the change
        for t in (task, listening):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    online = [s for s in statuses if s.state == "online"]  # the last one is the clean stop's "offline"
    first, latest = online[0], online[-1]
    assert [(d.id, d.kind) for d in first.devices] == [("SIMBPM0001", "blood_pressure")]
    assert latest.devices[0].last_seen is not None and latest.at is not None
    assert latest.devices[0].last_seen <= latest.at
