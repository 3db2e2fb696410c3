"""What the pages may read and do in the gateway: its own interfaces, never its files or keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple, Protocol

from gateway.ble import PairingRadio
from gateway.readings import Pipeline
from gateway.settings import Settings
from protocol import DeviceStatus


class ServiceFacts(NamedTuple):
    """The runtime's status facts, as the MQTT status carries them, plus what only the box shows."""

    outbox_depth: int
    oldest_unsent_s: float | None
    used_percent: int
    quarantined: int
    held: int
    faults: list[str]
    devices: list[DeviceStatus]


class SourcePort(Protocol):
    """What the pages ask the device source: the part of gateway.service's `DeviceSource` interface they
    use (declared here so that the pages need not import the room that wires the process)."""

    @property
    def scans_on_request(self) -> bool:
        """Whether `pairing_radio()` gives a radio to scan for devices through."""
        ...

    async def pairing_radio(self) -> PairingRadio | None:
        """The radio the technician's pairing scan runs through (gateway.ble.pairing_scan)."""
        ...

    def unprovisioned_heard(self) -> Mapping[str, int]:
        """Addresses heard that are not provisioned, and how often."""
        ...

    def listed_devices(self) -> list[tuple[str, str]]:
        """The devices the source itself names, as (address, what)."""
        ...


class GatewayPort(Protocol):
    """What the pages read of the gateway: its settings, the pipeline (latest readings, plan, history),
    the device source's declared abilities, the broker connection and the service facts. Never its
    SQLite files or keys.
    """

    settings: Settings
    pipeline: Pipeline
    last_ack_at: datetime | None

    @property
    def source(self) -> SourcePort:
        """The device source: the pages ask it what its interface declares (nearby devices, a scan)."""
        ...

    @property
    def broker_connected(self) -> bool: ...

    def service_facts(self) -> ServiceFacts:
        """Blocking (it asks the outbox): call it in a thread."""
        ...
