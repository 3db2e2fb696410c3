"""`dho-gateway demo`: the whole loop on one machine — simulated devices, zoning, the sealed outbox,
MQTT (an embedded broker unless one is named), and a reference central receiver that stores and acks."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.demo.broker import DemoError, embedded_broker, free_port
from gateway.demo.display import advice_lines, reading_line
from gateway.errors import GatewayError
from gateway.plans import load_advice
from gateway.readings import Reading
from gateway.service import Gateway, open_device_source
from gateway.settings import build_settings
from gateway.web import hash_password
from protocol import BrokerSettings, Topics, make_client, publish
from zoning import EMERGENCY, AdviceBook, Assessment, Language

DEMO_TIMEZONE = "Europe/Oslo"  # the demo's box, its pages and its console all say times in this zone

_BROKER_TIMEOUT_S = 5.0

CENTRAL_GROUP = "dho_gateway.central"


def open_central(broker: BrokerSettings, database: Path) -> Any:
    """The reference central service, found by entry point: the gateway never imports `central` (it is
    another deployable, with its own dependencies)."""
    found = [ep for ep in entry_points(group=CENTRAL_GROUP) if ep.name == "embedded"]
    if not found:
        raise GatewayError("the demo's central service is not installed: pip install 'dho-gateway[demo]'")
    try:
        factory = found[0].load()
    except ImportError as exc:
        raise GatewayError(
            f"the demo's central service cannot start ({exc}): pip install 'dho-gateway[demo]'"
        ) from None
    run = uuid.uuid4().hex[:8]
    # A group of its own (a real `dho-central ingest` on a shared broker is group "dho-central") and a
    # session that ends with the connection: nothing of this demo's central lingers in the broker to take
    # a share of the next run's readings (issue 19.9: a second run's acks went from 12 ms to 4.9 s).
    return factory(broker, database, identifier=f"dho-central-demo-{run}", group=f"dho-demo-{run}",
                   session_expiry_s=0)

DEMO_TECHNICIAN_PASSWORD = "demo-technician"  # noqa: S105 - a throw-away demo on loopback, printed on purpose
DEMO_NURSE = "demo-sykepleier"
DEMO_NURSE_PASSWORD = "demo-sykepleier"  # noqa: S105 - a throw-away demo on loopback, printed on purpose


def open_worklist(central: Any, tenant: str, *, any_port: bool) -> str | None:
    """The central's worklist for the demo's tenant, with one demo nurse; None if this central has none."""
    opener = getattr(central, "open_worklist", None)
    if opener is None:
        return None
    users = ((DEMO_NURSE, tenant, "nurse", DEMO_NURSE_PASSWORD),)
    return str(opener(port=0 if any_port else 8470, users=users))


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
    ack_latencies_s: list[float] = field(default_factory=list)  # stored -> acknowledged, per reading


async def _reachable(host: str, port: int) -> None:
    """Fail in seconds with one line, rather than retry for ever against a broker that is not there."""
    try:
        async with asyncio.timeout(_BROKER_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise DemoError(f"demo: cannot reach the MQTT broker at {host}:{port} ({reason}): start it, "
                        "or leave out --broker to use the embedded one") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _clear_retained_status(mqtt: BrokerSettings, topics: Topics) -> None:
    """Each demo run has a gateway id of its own: on a shared broker, leave no retained status behind it
    (an empty retained message deletes the retained one)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(3):
            async with make_client(mqtt, f"{topics.gateway}-leaving") as client:
                await publish(client, topics.status, b"", retain=True)


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
    """Run the whole loop on this machine until `readings` readings are acknowledged (for ever if None).

    `broker` is an MQTT broker's (host, port) to use instead of the embedded one; `protocol` its MQTT
    version ("5" or "3.1.1"; the embedded broker speaks 3.1.1). Each reading and its advice are written
    to `out` once the central has acknowledged it. Raises `DemoError` when the broker cannot be reached
    or the central cannot subscribe, `GatewayError` when the reference central is not installed.
    """
    # The console says times as the gateway and its pages do: in the box's time zone, which it names.
    screen = _Screen(time.monotonic(), readings, load_advice(), language, out, ZoneInfo(DEMO_TIMEZONE))
    async with AsyncExitStack() as stack:
        mqtt = await _broker(stack, broker, protocol, out)
        central = open_central(mqtt, data_dir / "central.sqlite3")
        stack.callback(central.close)
        gateway_id, tenant, patient = f"demo-gw-{uuid.uuid4().hex[:6]}", "demo-kommune", "demo-patient-1"
        if broker is not None:
            stack.push_async_callback(_clear_retained_status, mqtt, Topics(tenant, gateway_id))
        central.provision(gateway_id, tenant=tenant, patient=patient)  # what the kit's provisioning does
        worklist = open_worklist(central, tenant, any_port=web_port == 0)
        source = open_device_source("simulated-home", interval_s=interval_s, count=readings)
        settings = build_settings(
            {
                "gateway": {"id": gateway_id, "tenant": tenant, "patient": patient, "data_dir": str(data_dir),
                            "timezone": DEMO_TIMEZONE},
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
        gateway = Gateway(settings, source)
        gateway.uplink.acks.subscribe(screen.on_ack)
        gateway.pipeline.readings.subscribe(screen.on_reading)
        out(f"demo: data in {data_dir} (outbox sealed with AES-256-GCM); Ctrl-C stops")
        await _serve(central, gateway, screen.done, mqtt, out, worklist)
    return screen.result


class _Screen:
    """What the demo prints: each reading once it is acknowledged, with its advice; and the tally."""

    def __init__(self, started: float, readings: int | None, advice: AdviceBook, language: Language,
                 out: Callable[[str], None], tz: ZoneInfo) -> None:
        self.started = started  # time.monotonic()
        self.tz = tz
        self.readings = readings  # stop after this many acknowledged; None: never
        self.advice = advice
        self.language: Language = language
        self.out = out
        self.result = DemoResult()
        self.done = asyncio.Event()
        self.shown: dict[str, tuple[str, list[str], float]] = {}  # reading id -> line, advice, stored at

    def on_reading(self, reading: Reading, assessment: Assessment) -> None:
        """A reading was stored: keep its line and advice until the central acknowledges it."""
        line = f"{reading.effective.astimezone(self.tz):%H:%M:%S %Z}  {reading_line(reading.measurement, assessment)}"
        self.shown[str(reading.id)] = (line, advice_lines(assessment, self.advice, self.language), time.monotonic())
        self.result.zones[assessment.zone.value] = self.result.zones.get(assessment.zone.value, 0) + 1

    def on_ack(self, ids: list[str]) -> None:
        """The central acknowledged these readings: print them with their advice; done after `readings`."""
        now = time.monotonic()
        result = self.result
        for reading_id in ids:
            if reading_id not in self.shown:
                continue
            line, texts, stored_at = self.shown.pop(reading_id)
            self.out(f"{line} acked {datetime.now(self.tz):%H:%M:%S} (+{now - stored_at:.2f} s)")
            result.ack_latencies_s.append(now - stored_at)
            for text in texts:
                self.out(f"{'':10}{'!!' if text == self.advice.text(EMERGENCY, self.language) else '->'} {text}")
            result.acknowledged += 1
            if result.first_ack_s is None:
                result.first_ack_s = now - self.started
        if self.readings is not None and result.acknowledged >= self.readings:
            self.done.set()


async def _broker(stack: AsyncExitStack, broker: tuple[str, int] | None, protocol: str,
                  out: Callable[[str], None]) -> BrokerSettings:
    """The broker to use: the embedded one (started on `stack`, MQTT 3.1.1) or `broker` once it answers."""
    if broker is None:
        host, port = "127.0.0.1", await stack.enter_async_context(embedded_broker())
        protocol = "3.1.1"
        out(f"demo: embedded MQTT broker on {host}:{port}")
    else:
        host, port = broker
        await _reachable(host, port)
        out(f"demo: using the MQTT broker at {host}:{port}")
    return BrokerSettings(host=host, port=port, protocol=protocol, insecure_dev=True)  # type: ignore[arg-type,unused-ignore]


async def _serve(central: Any, gateway: Gateway, done: asyncio.Event, mqtt: BrokerSettings,
                 out: Callable[[str], None], worklist: str | None = None) -> None:
    """Run the central receiver and the gateway until `done`; `DemoError` if the central cannot subscribe."""
    central_task = asyncio.create_task(central.run())
    try:
        try:
            async with asyncio.timeout(_BROKER_TIMEOUT_S * 3):
                await central.ready.wait()
        except TimeoutError:
            raise DemoError(f"demo: the MQTT broker at {mqtt.host}:{mqtt.port} accepts connections but the central "
                            "receiver could not subscribe within 15 s: is it an MQTT broker? (try "
                            "--mqtt-protocol 3.1.1)") from None
        announce = asyncio.create_task(_announce_pages(gateway, out, worklist))
        try:
            await _until(done, gateway.run())
        finally:
            announce.cancel()
    finally:
        central_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await central_task


async def _until(done: asyncio.Event, service: Coroutine[Any, Any, None]) -> None:
    """Run `service` until `done` is set; an error of the service's own ends the wait and is raised."""
    task = asyncio.create_task(service)
    waiter = asyncio.create_task(done.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _announce_pages(gateway: Gateway, out: Callable[[str], None], worklist: str | None = None) -> None:
    if gateway.web is None:
        return
    await gateway.web.ready.wait()
    out(f"demo: the patient's page is at {gateway.web.address} and the technician's at "
        f"{gateway.web.address}service (password: {DEMO_TECHNICIAN_PASSWORD})")
    if worklist is not None:
        out(f"demo: the nurses' worklist is at {worklist} (user {DEMO_NURSE}, password {DEMO_NURSE_PASSWORD})")
