"""A bleak backend on bumble, so CI drives bleak's own `BleakScanner` / `BleakClient` API against the
simulated devices. Production uses bleak's BlueZ backend; this one exists for tests and technicians.

Use: `BleakScanner(backend=BumbleScanner, radio=radio)`, `BleakClient(address, backend=BumbleClient,
radio=radio)` (bleak passes extra keyword arguments to the backend). What it does not model: radio
range, RSSI changes, BlueZ's D-Bus behaviour and its pairing agent (docs/ble.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDBusError, BleakDeviceNotFoundError, BleakError
from bumble.core import UUID as BumbleUUID
from bumble.core import AdvertisingData, BaseBumbleError
from bumble.device import Advertisement, Connection, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import HCI_Error, HCI_ErrorCode

from hardware_sims.radio import VirtualRadio, random_static

_BASE = "-0000-1000-8000-00805f9b34fb"
_PROPERTY_NAMES = {0x02: "read", 0x04: "write-without-response", 0x08: "write", 0x10: "notify", 0x20: "indicate"}


def _uuid(value: BumbleUUID) -> str:
    text = value.to_hex_str()
    if len(text) == 4:
        return f"0000{text.lower()}{_BASE}"
    return str(uuid.UUID(text.replace("-", "")))


def advertisement_data(adv: Advertisement) -> AdvertisementData:
    data = adv.data
    uuids: list[str] = []
    for kind in (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                 AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                 AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS):
        uuids += [_uuid(u) for u in data.get(kind) or []]
    service_data = {}
    found = data.get(AdvertisingData.SERVICE_DATA_16_BIT_UUID)
    if found is not None:
        service_data[_uuid(found[0])] = bytes(found[1])
    manufacturer = {}
    found_m = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
    if found_m is not None:
        manufacturer[found_m[0]] = bytes(found_m[1])
    return AdvertisementData(
        local_name=data.get(AdvertisingData.COMPLETE_LOCAL_NAME), manufacturer_data=manufacturer,
        service_data=service_data, service_uuids=uuids, tx_power=None, rssi=adv.rssi, platform_data=(adv,),
    )


def _address(adv: Advertisement) -> str:
    return adv.address.to_string(False)


class BumbleScanner(BaseBleakScanner):
    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        radio: VirtualRadio,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._radio = radio

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = advertisement_data(adv)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = _address(adv)
        device = self.create_or_update_device(address, address, data.local_name, adv, data)
        self.call_detection_callbacks(device, data)

    async def start(self) -> None:
        self.seen_devices = {}
        await self._radio.start_scanning(self._on_advertisement)

    async def stop(self) -> None:
        await self._radio.stop_scanning(self._on_advertisement)


class BumbleClient(BaseBleakClient):
    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        radio: VirtualRadio,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._radio = radio
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _on_disconnection(self, _reason: int) -> None:
        unexpected = self._connection is not None
        self._connection = self._peer = None
        if unexpected and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._radio.connect_errors:
            # As bleak's BlueZ backend raises them: the D-Bus error name, then BlueZ's text.
            raise BleakDBusError("org.bluez.Error.Failed", [self._radio.connect_errors.pop(0)])
        adapter = await self._radio.adapter()
        try:
            async with asyncio.timeout(self._timeout), self._radio.connecting:
                connection = await adapter.connect(random_static(self.address))
        except TimeoutError:
            raise BleakDeviceNotFoundError(self.address, f"device {self.address} was not found") from None
        except BaseBumbleError as exc:
            raise BleakError(f"connecting to {self.address} failed: {exc}") from exc
        self._connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        self._peer = Peer(connection)
        try:
            if pair:
                await self._secure(adapter, connection)
            self.services = await self._discover(self._peer)
        except BaseException:
            await self.disconnect()
            raise

    async def _secure(self, adapter: Any, connection: Connection) -> None:
        """Encrypt with the stored bond, or pair (Just Works, bonding) when there is none, as BlueZ does."""
        keys = await adapter.keystore.get(str(connection.peer_address)) if adapter.keystore else None
        try:
            if keys is not None:
                await connection.encrypt()
            else:
                await connection.pair()
        except HCI_Error as exc:
            # Named as BlueZ reports it, e.g. "PIN or Key Missing" when the device forgot the bond.
            reason = HCI_ErrorCode(exc.error_code or 0).name.replace("_ERROR", "").replace("_", " ").lower()
            raise BleakError(f"securing the link to {self.address} failed: {reason}") from exc
        except BaseBumbleError as exc:
            raise BleakError(f"securing the link to {self.address} failed: {exc}") from exc

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        await peer.discover_services()
        for service in peer.services:
            await service.discover_characteristics()
            bleak_service = BleakGATTService(service, service.handle, _uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                await characteristic.discover_descriptors()
                properties: list[Any] = [name for bit, name in _PROPERTY_NAMES.items()
                                         if characteristic.properties & bit]
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic, characteristic.handle, _uuid(characteristic.uuid), properties,
                    lambda: self.mtu_size - 3, bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in characteristic.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(
                        descriptor, descriptor.handle, _uuid(descriptor.type), bleak_characteristic))
        return collection

    async def disconnect(self) -> None:
        connection, self._connection, self._peer = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(BaseBumbleError, asyncio.TimeoutError):
                await connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._connection is None:
            raise BleakError("not connected")
        await self._connection.pair()

    async def unpair(self) -> None:
        adapter = await self._radio.adapter()
        if adapter.keystore is not None:
            with contextlib.suppress(KeyError):
                await adapter.keystore.delete(str(random_static(self.address)))

    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"not connected to {self.address}")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        try:
            return bytearray(await self._require().read_value(characteristic.handle))
        except BaseBumbleError as exc:
            raise BleakError(f"reading {characteristic.uuid} failed: {exc}") from exc

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require().read_value(descriptor.handle))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        try:
            await self._require().write_value(characteristic.handle, bytes(data), with_response=response)
        except BaseBumbleError as exc:
            raise BleakError(f"writing {characteristic.uuid} failed: {exc}") from exc

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._require().write_value(descriptor.handle, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: Callable[[bytearray], None], **kwargs: Any
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscriptions[characteristic.handle] = deliver
        # bleak prefers notifications where a characteristic offers both; health measurements indicate.
        await self._require().subscribe(proxy, deliver, prefer_notify=True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        deliver = self._subscriptions.pop(characteristic.handle, None)
        if self._peer is not None and deliver is not None:
            await self._peer.unsubscribe(characteristic.obj, deliver)
