"""Which bleak backends the gateway's radio work goes through (BlueZ on the box, bumble in simulations)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner


@dataclass
class BleBackends:
    """bleak backend classes and their keyword arguments; None: the platform's (BlueZ on the gateway)."""

    scanner: type[BaseBleakScanner] | None = None  # None: the platform's (BlueZ on the gateway)
    client: type[BaseBleakClient] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for both


# What hears a running scan's advertisements (a BLE source's detection stream).
Listener = Callable[[BLEDevice, AdvertisementData], None]


class ListeningScanner(BaseBleakScanner):
    """A bleak scanner backend that starts no discovery of its own: it hears a scan already running in this
    process (`listeners`, set on a subclass: `listening_to`). BlueZ allows one discovery per D-Bus client —
    a second StartDiscovery is refused (InProgress) and either scan's StopDiscovery would end both — so the
    technician's pairing scan beside the running BLE source listens to the source's own scan."""

    listeners: ClassVar[list[Listener]] = []

    def __init__(self, detection_callback: AdvertisementDataCallback | None, service_uuids: list[str] | None,
                 scanning_mode: str = "active", **_options: Any) -> None:
        super().__init__(detection_callback, service_uuids)

    def _heard(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        if self.is_allowed_uuid(advertisement.service_uuids):
            self.call_detection_callbacks(device, advertisement)

    async def start(self) -> None:
        """Listen to the running scan."""
        self.seen_devices = {}
        self.listeners.append(self._heard)

    async def stop(self) -> None:
        """Stop listening (the running scan goes on)."""
        if self._heard in self.listeners:
            self.listeners.remove(self._heard)


def listening_to(listeners: list[Listener]) -> type[ListeningScanner]:
    """A `ListeningScanner` backend class that hears what `listeners` are told."""
    return type("ListeningScanner", (ListeningScanner,), {"listeners": listeners})
