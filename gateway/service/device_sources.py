"""Where GATT values come from, and what the gateway may ask a device source besides.

The interface (`DeviceSource`) declares every optional ability with a capability flag and a method, as
bleak's `BaseBleakClient` declares what a backend may lack: the gateway reads the flag, never probes the
object. `BaseDeviceSource` gives the "not supported" answers; a source subclasses it and overrides what
it can do, or (the simulators, which may not import the gateway) implements the whole interface itself.

The gateway never imports the simulators: sources are found by name through the
`dho_gateway.device_sources` entry point group, so production installs need none of them.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from drivers import Deliver
from gateway.ble import PairingRadio
from gateway.settings import ConfigError
from protocol import DeviceStatus

# What a source hands each value to; it answers whether a device may forget the value (drivers.Delivery).
GattSink = Deliver
GROUP = "dho_gateway.device_sources"


@runtime_checkable
class DeviceSource(Protocol):
    """A device source: `run` delivers GATT values until cancelled; the rest are optional abilities.

    - `reports_devices`: `device_status()` tells each provisioned device's battery, last contact and
      pairing. Without it the gateway tells what the readings tell.
    - `scans_on_request`: `pairing_radio()` gives the radio a technician scans for and pairs the source's
      devices through (`kit pair` and the technician page's "Start a pairing scan": one code path,
      `gateway.ble.pairing_scan`); BlueZ on the box, the simulated home's own radio. Without it
      `pairing_radio()` is None: there is nothing to scan or pair through.
    - `unprovisioned_heard()`: addresses heard that are not provisioned, and how often (may be empty).
    - `listed_devices()`: devices the source itself names, as (address, what) — a simulated home lists
      the devices it simulates; a radio lists none.
    """

    async def run(self, sink: GattSink) -> None:
        """Deliver GATT values to `sink` until cancelled."""
        ...

    @property
    def reports_devices(self) -> bool:
        """Whether `device_status()` reports the provisioned devices."""
        ...

    def device_status(self) -> list[DeviceStatus]:
        """Each provisioned device's battery, last contact and pairing; [] when not `reports_devices`."""
        ...

    @property
    def scans_on_request(self) -> bool:
        """Whether `pairing_radio()` gives a radio to scan and pair through."""
        ...

    async def pairing_radio(self) -> PairingRadio | None:
        """The radio to scan for and pair devices through (its devices reachable); None when not
        `scans_on_request`."""
        ...

    def unprovisioned_heard(self) -> Mapping[str, int]:
        """Addresses heard that are not provisioned, and how often."""
        ...

    def listed_devices(self) -> list[tuple[str, str]]:
        """The devices the source itself names, as (address, what)."""
        ...


class BaseDeviceSource(ABC):
    """A device source with the "not supported" answer to every optional ability: subclass it, write
    `run`, and override (with its flag) what the source can do."""

    reports_devices = False
    scans_on_request = False

    @abstractmethod
    async def run(self, sink: GattSink) -> None:
        """Deliver GATT values to `sink` until cancelled."""

    def device_status(self) -> list[DeviceStatus]:
        """Not supported (`reports_devices` is false): nothing reported."""
        return []

    async def pairing_radio(self) -> PairingRadio | None:
        """Not supported (`scans_on_request` is false): no radio to scan or pair through."""
        return None

    def unprovisioned_heard(self) -> Mapping[str, int]:
        """Nothing heard that is not provisioned."""
        return {}

    def listed_devices(self) -> list[tuple[str, str]]:
        """No devices of its own to list."""
        return []


class IdleDeviceSource(BaseDeviceSource):
    """A device source that never delivers anything: its `run` waits until it is cancelled. For a gateway
    whose readings arrive some other way (a test that calls the pipeline itself) or not at all."""

    async def run(self, sink: GattSink) -> None:
        """Deliver nothing, until cancelled."""
        await asyncio.Event().wait()


def available_sources() -> list[str]:
    """The names of the installed device sources (entry points)."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def open_device_source(name: str, **options: Any) -> Any:
    """The named source, constructed with `options`; a clear ConfigError if there is none by that name
    or if it does not offer the `DeviceSource` interface. (Typed `Any`: the demo also reads what the
    simulated home offers beyond the interface, the devices it simulates.)"""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        known = ", ".join(available_sources()) or "none installed"
        raise ConfigError(
            f"device_source: {name!r} is not available in this installation (available: {known})"
        )
    source = found[0].load()(**options)
    if not isinstance(source, DeviceSource):  # checked once here, so nothing later has to probe it
        raise ConfigError(f"device_source: {name!r} does not offer the DeviceSource interface "
                          "(gateway/service/device_sources.py)")
    return source
