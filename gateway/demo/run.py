"""`dho-gateway demo`: the whole loop on one machine — simulated devices, zoning, the sealed outbox,
MQTT (an embedded broker unless one is named), and a reference central receiver that stores and acks."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway.demo.broker import embedded_broker, free_port
from gateway.demo.display import advice_lines, reading_line
from gateway.plans import load_advice
from gateway.readings import Reading
from gateway.service import Gateway, open_device_source
from gateway.settings import build_settings
from gateway.web import hash_password
from sync.central import CentralStore, ReferenceCentral
from sync.connection import BrokerSettings
from zoning.advice import EMERGENCY, Language
from zoning.models import Assessment

DEMO_TECHNICIAN_PASSWORD = "demo-technician"  # noqa: S105 - a throw-away demo on loopback, printed on purpose


def _free(port: int) -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


@dataclass
class DemoResult:
    acknowledged: int = 0
    first_ack_s: float | None = None
    zones: dict[str, int] = field(default_factory=dict)


async def run_demo(
    *,
    data_dir: Path,
    broker: tuple[str, int] | None = None,
    protocol: str = "5",
    readings: int | None = None,
    interval_s: float = 1.0,
    language: Language = "en",
    out: Callable[[str], None] = print,
    web_port: int = 8080,
) -> DemoResult:
    started = time.monotonic()
    result = DemoResult()
    done = asyncio.Event()
    shown: dict[str, tuple[str, list[str], float]] = {}
    advice = load_advice()

    def on_reading(reading: Reading, assessment: Assessment) -> None:
        line = f"{reading.effective.astimezone():%H:%M:%S}  {reading_line(reading.measurement, assessment)}"
        shown[str(reading.id)] = (line, advice_lines(assessment, advice, language), time.monotonic())
        result.zones[assessment.zone.value] = result.zones.get(assessment.zone.value, 0) + 1

    def on_ack(ids: list[str]) -> None:
        now = time.monotonic()
        for reading_id in ids:
            if reading_id not in shown:
                continue
            line, texts, stored_at = shown.pop(reading_id)
            out(f"{line} acked {datetime.now():%H:%M:%S} (+{now - stored_at:.2f} s)")
            for text in texts:
                out(f"{'':10}{'!!' if text == advice.text(EMERGENCY, language) else '->'} {text}")
            result.acknowledged += 1
            if result.first_ack_s is None:
                result.first_ack_s = now - started
        if readings is not None and result.acknowledged >= readings:
            done.set()

    async with AsyncExitStack() as stack:
        if broker is None:
            host, port = "127.0.0.1", await stack.enter_async_context(embedded_broker())
            protocol = "3.1.1"
            out(f"demo: embedded MQTT broker on {host}:{port}")
        else:
            host, port = broker
            out(f"demo: using the MQTT broker at {host}:{port}")
        mqtt = BrokerSettings(host=host, port=port, protocol=protocol, insecure_dev=True)  # type: ignore[arg-type,unused-ignore]
        central_store = CentralStore(data_dir / "central.sqlite3")
        stack.callback(central_store.close)
        central = ReferenceCentral(mqtt, central_store, identifier=f"dho-central-demo-{uuid.uuid4().hex[:8]}")
        source = open_device_source("simulated-home", interval_s=interval_s, count=readings)
        settings = build_settings(
            {
                "gateway": {
                    "id": f"demo-gw-{uuid.uuid4().hex[:6]}",
                    "tenant": "demo-kommune",
                    "patient": "demo-patient-1",
                    "data_dir": str(data_dir),
                },
                "mqtt": mqtt.model_dump(),
                "sync": {"ack_timeout_s": 5},
                # The pages: 8080 if it is free, else any free port (the address is printed below).
                "web": {"port": web_port if web_port == 0 or _free(web_port) else free_port(),
                        "technician_password_hash": hash_password(DEMO_TECHNICIAN_PASSWORD)},
                "device_source": "simulated-home",
                "devices": [
                    {"address": d.address, "kind": d.kind, "model": d.model, "serial": d.serial}
                    for d in source.devices
                ],
            }
        )
        gateway = Gateway(settings, source, on_ack=on_ack)
        gateway.pipeline.listeners.insert(0, on_reading)
        out(f"demo: data in {data_dir} (outbox sealed with AES-256-GCM); Ctrl-C stops")
        async with asyncio.TaskGroup() as tasks:
            central_task = tasks.create_task(central.run())
            async with asyncio.timeout(15):
                await central.ready.wait()
            gateway_task = tasks.create_task(gateway.run())
            if gateway.web is not None:
                async with asyncio.timeout(15):
                    await gateway.web.ready.wait()
                out(f"demo: the patient's page is at {gateway.web.address} and the technician's at "
                    f"{gateway.web.address}service (password: {DEMO_TECHNICIAN_PASSWORD})")
            await done.wait()
            gateway_task.cancel()
            central_task.cancel()
    return result
