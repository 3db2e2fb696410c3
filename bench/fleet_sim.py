"""A fleet of simulated gateways in one process, each running the gateway's real uplink
(`gateway.uplink.Uplink`: batches, window, ack timeout, re-sends, status with Last Will) and wire models
against a real broker. Only the sealed SQLite outbox is replaced by gateway.storage.MemoryOutbox: the
fleet measures the central side, not 2,000 SD cards.

Used by bench/fleet.py (the 2,000-gateway run) and by the CI-sized fleet and fault tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.storage import MemoryOutbox
from gateway.uplink import Uplink
from protocol import BrokerSettings, Topics, WireAssessment, WireDevice, WireQuantity, WireReading


def wire_reading(patient: str, device: str, at: datetime, rng: random.Random) -> WireReading:
    """A plausible blood pressure or oximeter reading, zoned as the gateway would send it."""
    if rng.random() < 0.5:
        systolic = rng.randint(105, 175)
        kind, components = "blood_pressure", {
            "systolic": WireQuantity(value=Decimal(systolic), unit="mm[Hg]"),
            "diastolic": WireQuantity(value=Decimal(rng.randint(60, 100)), unit="mm[Hg]"),
            "mean": WireQuantity(value=Decimal(rng.randint(75, 120)), unit="mm[Hg]"),
            "pulse": WireQuantity(value=Decimal(rng.randint(50, 100)), unit="/min"),
        }
        zone = "red" if systolic >= 170 else "yellow" if systolic >= 150 else "green"
    else:
        spo2 = rng.randint(86, 99)
        kind, components = "spo2", {
            "spo2": WireQuantity(value=Decimal(spo2), unit="%"),
            "pulse": WireQuantity(value=Decimal(rng.randint(50, 110)), unit="/min"),
        }
        zone = "red" if spo2 < 88 else "yellow" if spo2 < 92 else "green"
    return WireReading(
        id=uuid.uuid4(), patient=patient, type=kind, components=components,  # type: ignore[arg-type]
        effective=at, time_source="device_synced", device_time=at.replace(tzinfo=None), clock_correction_s=0.0,
        device=WireDevice(id=device, model="simulated", battery=rng.randint(20, 100)),
        assessment=WireAssessment(zone=zone, rules=[], advice=[], profile="standard", profile_version=1),  # type: ignore[arg-type]
        received=at + timedelta(seconds=1),
    )


@dataclass
class SimulatedGateway:
    id: str
    tenant: str
    patient: str
    device: str
    outbox: MemoryOutbox
    uplink: Uplink

    @property
    def uplink_topic(self) -> str:
        return Topics(self.tenant, self.id).readings


@dataclass
class Fleet:
    """N gateways: `measure()` puts readings into their outboxes, their uplinks deliver them."""

    broker: BrokerSettings
    size: int
    tenants: int = 4
    prefix: str = "sim"
    batch_size: int = 50
    window: int = 8
    ack_timeout_s: float = 30.0
    status_interval_s: float = 3600.0
    seed: int = 1
    gateways: list[SimulatedGateway] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # reading id -> monotonic time put in the outbox
    latencies: list[float] = field(default_factory=list)  # seconds from outbox to ack, per reading
    acked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        for i in range(self.size):
            gateway_id = f"{self.prefix}-gw-{i:05d}"
            outbox = MemoryOutbox()
            uplink = Uplink(
                outbox, self.broker, Topics(f"{self.prefix}-t{i % self.tenants}", gateway_id), version="fleet-sim",
                batch_size=self.batch_size, window=self.window, ack_timeout_s=self.ack_timeout_s,
                status_interval_s=self.status_interval_s,
            )
            uplink.acks.subscribe(self._on_ack)
            self.gateways.append(SimulatedGateway(
                gateway_id, f"{self.prefix}-t{i % self.tenants}", f"{self.prefix}-p{i:05d}",
                f"F0:5E:{i >> 16 & 0xFF:02X}:{i >> 8 & 0xFF:02X}:{i & 0xFF:02X}:01", outbox, uplink,
            ))

    def registry(self) -> Iterable[tuple[str, str, str]]:
        """(gateway, tenant, patient) for provisioning the central side."""
        return ((g.id, g.tenant, g.patient) for g in self.gateways)

    def _on_ack(self, ids: list[str]) -> None:
        now = time.monotonic()
        for reading_id in ids:
            if reading_id in self.sent and reading_id not in self.acked:
                self.acked.add(reading_id)
                self.latencies.append(now - self.sent[reading_id])

    def measure(self, per_gateway: int = 1, *, spread: timedelta = timedelta(hours=24)) -> int:
        """Each gateway takes `per_gateway` readings (times spread over the last `spread`); returns how many."""
        now = datetime.now(UTC)
        started = time.monotonic()
        for g in self.gateways:
            for _ in range(per_gateway):
                at = now - spread * self._rng.random()
                reading = wire_reading(g.patient, g.device, at.replace(microsecond=0), self._rng)
                g.outbox.put(str(reading.id), reading.model_dump_json().encode())
                self.sent[str(reading.id)] = started
            g.uplink.notify()
        return per_gateway * len(self.gateways)

    def pending(self) -> int:
        return sum(g.outbox.depth() for g in self.gateways)

    def connected(self) -> int:
        return sum(g.uplink.connected.is_set() for g in self.gateways)

    async def run(self, *, connect_spread_s: float = 0.0) -> None:
        """Run every gateway's uplink until cancelled (start times spread, as real boxes are)."""

        async def one(g: SimulatedGateway, delay: float) -> None:
            await asyncio.sleep(delay)
            await g.uplink.run()

        async with asyncio.TaskGroup() as tasks:
            for g in self.gateways:
                tasks.create_task(one(g, self._rng.random() * connect_spread_s))

    async def wait(self, condition: str, timeout: float) -> float:  # noqa: ASYNC109 (a deadline, not a call)
        """Wait until every gateway is `connected` or the fleet has `drained`; returns seconds taken."""
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            # Polls 2,000 uplinks' state: there is no one event to wait on.
            while not (self.connected() == self.size if condition == "connected" else self.pending() == 0):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return time.monotonic() - started


@contextlib.contextmanager
def quiet_sync_logs() -> Iterable[None]:
    """2,000 gateways each warning of plain TCP or a reconnect drown the bench's own lines."""
    import logging

    loggers = [logging.getLogger(name) for name in ("gateway.uplink.connection", "gateway.uplink.uplink", "mqtt")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
