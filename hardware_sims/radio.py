"""An in-process Bluetooth LE radio: bumble controllers on one `LocalLink`, no hardware, no kernel.

Every simulated device is a bumble `Device` with its own controller; the gateway's side is one more
`Device` (the "adapter"), shared by the scanner and all clients as BlueZ shares hci0. Addresses are
random static (with public addresses bumble's reconnection fails: "keys not found in key store").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bumble.controller import Controller
from bumble.device import Advertisement, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

ADAPTER_ADDRESS = "F0:00:00:00:00:AA"

AdvertisementListener = Callable[[Advertisement], None]


def random_static(address: str) -> Address:
    return Address(address, Address.RANDOM_DEVICE_ADDRESS)


class VirtualRadio:
    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self._adapter: Device | None = None
        self._adapter_ready = asyncio.Lock()
        self._listeners: list[AdvertisementListener] = []
        # One connection attempt at a time, as one BlueZ adapter does (bumble asserts otherwise).
        self.connecting = asyncio.Lock()
        self._scanning = 0
        self.scanning_stalled = False  # fault: scanning goes silent, as BlueZ's sometimes does
        # Fault: the next connection attempts fail with these BlueZ error texts, one each (e.g.
        # "le-connection-abort-by-local", which BlueZ reports when the controller gave up on a busy air).
        self.connect_errors: list[str] = []

    def new_device(self, name: str, address: str) -> Device:
        controller = Controller(name, link=self.link)
        return Device(name=name, address=random_static(address), host=Host(controller, AsyncPipeSink(controller)))

    async def adapter(self) -> Device:
        async with self._adapter_ready:
            if self._adapter is None:
                adapter = self.new_device("gateway", ADAPTER_ADDRESS)
                await adapter.power_on()
                adapter.on(adapter.EVENT_ADVERTISEMENT, self._on_advertisement)
                self._adapter = adapter
            return self._adapter

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        if self.scanning_stalled:
            return
        for listener in list(self._listeners):
            listener(advertisement)

    @property
    def scanning(self) -> bool:
        return self._scanning > 0

    async def start_scanning(self, listener: AdvertisementListener) -> None:
        adapter = await self.adapter()
        self.scanning_stalled = False  # a fresh scan start is what cures a stalled scanner
        self._listeners.append(listener)
        self._scanning += 1
        if self._scanning == 1:
            await adapter.start_scanning(filter_duplicates=False)

    async def stop_scanning(self, listener: AdvertisementListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
            self._scanning -= 1
            if self._scanning == 0 and self._adapter is not None:
                await self._adapter.stop_scanning()
