"""Where GATT values come from. The gateway never imports the simulators: sources are found by name
through the `dho_gateway.device_sources` entry point group, so production installs need none of them."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from drivers import Deliver
from gateway.settings import ConfigError

# What a source hands each value to; it answers whether a device may forget the value (drivers.Delivery).
GattSink = Deliver
GROUP = "dho_gateway.device_sources"


class DeviceSource(Protocol):
    async def run(self, sink: GattSink) -> None: ...


def available_sources() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def open_device_source(name: str, **options: Any) -> Any:
    """The named source, constructed with `options`; a clear ConfigError if there is none by that name."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        known = ", ".join(available_sources()) or "none installed"
        raise ConfigError(
            f"device_source: {name!r} is not available in this installation (available: {known})"
        )
    return found[0].load()(**options)
