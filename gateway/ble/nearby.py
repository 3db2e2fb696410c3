"""The pairing scan: what is nearby, and what each device is — one code path for `kit pair` and the
technician page's "Start a pairing scan", through the radio the device source names (`PairingRadio`:
BlueZ on the box, the simulated home's own radio for a technician's or CI's simulated kit)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from drivers import STANDARD, named_quirks, uuids
from gateway.ble.backends import BleBackends

# The health services a device may advertise, and the kind each means (Bluetooth SIG assigned numbers).
HEALTH_SERVICES: dict[str, str] = {profile.service: kind for kind, profile in STANDARD.items()}
HEALTH_SERVICES[uuids.uuid16(0x181B)] = "body_weight"  # Body Composition (Mi body-composition scales)


class PairingRadio(Protocol):
    """The radio a technician scans and pairs a device source's devices through: bleak backends (None:
    the platform's, BlueZ on the box) with their keyword arguments, and what answers pairing requests."""

    @property
    def scanner_backend(self) -> type[Any] | None:
        """bleak scanner backend class; None: the platform's."""
        ...

    @property
    def client_backend(self) -> type[Any] | None:
        """bleak client backend class; None: the platform's."""
        ...

    @property
    def backend_options(self) -> dict[str, Any]:
        """Extra keyword arguments for both backends."""
        ...

    async def answer_pairing(self, passkeys: Mapping[str, int | None]) -> None:
        """Answer the radio's pairing requests for these devices only, with their passkeys (None: Just Works)."""
        ...


# Registers the gateway's pairing agent for these devices (gateway.ble.connect_bluez on the box).
Agent = Callable[[dict[str, int | None]], Awaitable[Any]]


async def _bluez_agent(passkeys: Mapping[str, int | None]) -> None:
    from gateway.ble.bluez import connect_bluez

    await connect_bluez(passkeys)


@dataclass
class BluezRadio:
    """BlueZ on the box: bleak's platform backends (or the ones given), and the gateway's pairing agent
    registered with BlueZ over the system bus (`agent`; None: nothing answers pairing requests)."""

    backends: BleBackends = field(default_factory=BleBackends)
    agent: Agent | None = _bluez_agent

    @property
    def scanner_backend(self) -> type[Any] | None:
        """The scanner backend (None: BlueZ)."""
        return self.backends.scanner

    @property
    def client_backend(self) -> type[Any] | None:
        """The client backend (None: BlueZ)."""
        return self.backends.client

    @property
    def backend_options(self) -> dict[str, Any]:
        """Extra keyword arguments for both backends."""
        return self.backends.options

    async def answer_pairing(self, passkeys: Mapping[str, int | None]) -> None:
        """Register the gateway's pairing agent with BlueZ for these devices."""
        if self.agent is not None:
            await self.agent(dict(passkeys))


def backends_of(radio: PairingRadio) -> BleBackends:
    """The bleak backends of a pairing radio."""
    return BleBackends(radio.scanner_backend, radio.client_backend, dict(radio.backend_options))


@dataclass(frozen=True)
class Nearby:
    """A device heard in a pairing scan, and what it is."""

    address: str
    name: str | None
    rssi: int
    kind: str | None  # None: not a health device
    profile: str | None  # a vendor profile the name and services match, if any
    advertised_only: bool = False  # its values come in advertisements: nothing to pair


def classify(name: str | None, service_uuids: list[str], service_data: list[str]) -> tuple[str | None, str | None,
                                                                                         bool]:
    """(kind, vendor profile, advertised only) from what a device advertises; kind None: not a health device."""
    services = [u.lower() for u in (*service_uuids, *service_data)]
    kind = next((HEALTH_SERVICES[u] for u in services if u in HEALTH_SERVICES), None)
    if kind is None:
        return None, None, False
    for profile in named_quirks().values():
        if name and profile.name_prefixes and name.startswith(profile.name_prefixes) and profile.service in services:
            return kind, profile.name, profile.advertised and profile.measurement in service_data
    return kind, None, False


async def pairing_scan(backends: BleBackends | None, seconds: float) -> list[Nearby]:
    """Every device heard in `seconds`, strongest signal first (then by address: a stable numbering)."""
    found: dict[str, Nearby] = {}
    b = backends or BleBackends()

    def seen(device: BLEDevice, adv: AdvertisementData) -> None:
        kind, profile, advertised = classify(adv.local_name or device.name, list(adv.service_uuids),
                                             list(adv.service_data))
        address = device.address.upper()
        earlier = found.get(address)
        found[address] = Nearby(address, adv.local_name or (earlier.name if earlier else None), adv.rssi,
                                kind or (earlier.kind if earlier else None),
                                profile or (earlier.profile if earlier else None),
                                advertised or (earlier.advertised_only if earlier else False))

    scanner = BleakScanner(seen, backend=b.scanner, **b.options)
    await scanner.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await scanner.stop()
    return sorted(found.values(), key=lambda n: (-n.rssi, n.address))
