"""Issue 9.6 through the running gateway: a COPD patient with a daily thermometer reading and no oximeter
reading for 39 days gets an overdue event for the oximeter, against a real Mosquitto."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiomqtt

from drivers.measurement import MeasurementKind as K
from gateway.service import Gateway, IdleDeviceSource
from gateway.settings import build_settings
from protocol import BrokerSettings, Event, Topics, make_client
from tests.conftest import Mosquitto
from zoning import PastReading, Zone


async def test_no_oximeter_reading_for_39_days_is_overdue_despite_a_daily_thermometer(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    gateway = Gateway(build_settings({
        "gateway": {"id": "gw-due", "tenant": "t", "patient": "p-due", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "insecure_dev": True},
        "zoning": {"profile": "standard-copd", "enrolled": date(2026, 1, 5)},
        "devices": [{"address": "F0:5E:1A:00:00:02", "kind": "spo2"},
                    {"address": "F0:5E:1A:00:00:03", "kind": "body_temperature"}],
    }), IdleDeviceSource())
    gateway.health_interval_s = 0.1
    now = datetime.now(UTC)
    gateway.pipeline.history = [
        PastReading(id="ox", kind=K.SPO2, values={"spo2": Decimal(96)}, effective=now - timedelta(days=39),
                    zone=Zone.GREEN),
        *(PastReading(id=f"t{d}", kind=K.BODY_TEMPERATURE, values={"temperature": Decimal("36.8")},
                      effective=now - timedelta(days=d), zone=Zone.GREEN) for d in range(39, -1, -1)),
    ]
    events: list[Event] = []
    async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "nurse-view") as viewer:
        await viewer.subscribe(Topics("t", "gw-due").events, qos=1)

        async def watch() -> None:
            message: aiomqtt.Message
            async for message in viewer.messages:
                events.append(Event.model_validate_json(bytes(message.payload)))  # type: ignore[arg-type,unused-ignore]

        async with asyncio.TaskGroup() as tasks:
            w = tasks.create_task(watch())
            g = tasks.create_task(gateway.run())
            async with asyncio.timeout(10):
                while not events:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)  # several more checks: still one event, and none for the thermometer
            g.cancel()
            w.cancel()
    (event,) = events
    assert event.kind == "measurement_overdue" and event.detail["kind"] == "spo2"
    assert event.detail["cadence"] == "weekly" and event.detail["days_overdue"] in (31, 32, 33)
