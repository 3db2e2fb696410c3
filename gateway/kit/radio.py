"""The kit commands' use of the radio, through bleak (BlueZ on the box, the simulated home's radio, the bumble
backend in tests): the pairing scan (gateway.ble, shared with the technician page), and connecting once to
read (and set) what pairing needs."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bleak import BleakClient
from bleak.exc import BleakError

from drivers import quirks_for, uuids
from drivers.device_info import decode_battery, decode_current_time, decode_string, encode_current_time
from drivers.gatt_time import date_time
from drivers.measurement import DecodeError
from gateway.ble import HEALTH_SERVICES, BleBackends, Nearby, classify
from gateway.ble import pairing_scan as scan

__all__ = ["HEALTH_SERVICES", "BondError", "DeviceFacts", "Nearby", "classify", "forget_bond", "read_device_facts",
           "remove_bond_bluez", "scan"]

_MULTIPLE_USERS = 0x02  # Weight Scale Feature bit 1: the scale keeps several users apart


@dataclass
class DeviceFacts:
    address: str
    model: str | None = None
    serial: str | None = None
    battery: int | None = None
    clock_offset_s: float | None = None  # device clock minus the gateway's, before any setting
    clock_set: bool = False
    multiple_users: bool = False


async def _read(client: BleakClient, uuid: str) -> bytes | None:
    if client.services is None or client.services.get_characteristic(uuid) is None:
        return None
    with contextlib.suppress(BleakError):
        return bytes(await client.read_gatt_char(uuid))
    return None


async def read_device_facts(address: str, kind: str, profile: str | None, backends: BleBackends | None,
                            timezone: str, *, set_clock: bool, pair: bool = False, timeout_s: float = 20.0,
                            ) -> DeviceFacts:
    """Connect once (pairing first when asked or when the profile needs it), read model, serial, battery
    and the device clock, set the clock if asked, disconnect."""
    b = backends or BleBackends()
    device_profile = quirks_for(kind, profile)
    client = BleakClient(address, timeout=timeout_s, pair=pair or device_profile.requires_pairing,
                         backend=b.client, **b.options)
    facts = DeviceFacts(address)
    async with asyncio.timeout(timeout_s * 2):
        await client.connect()
        try:
            for uuid, attribute in ((uuids.MODEL_NUMBER, "model"), (uuids.SERIAL_NUMBER, "serial")):
                raw = await _read(client, uuid)
                if raw is not None:
                    with contextlib.suppress(DecodeError):
                        setattr(facts, attribute, decode_string(raw, attribute))
            raw = await _read(client, uuids.BATTERY_LEVEL)
            if raw is not None:
                with contextlib.suppress(DecodeError):
                    facts.battery = decode_battery(raw)
            raw = await _read(client, uuids.WEIGHT_SCALE_FEATURE)
            if raw is not None and len(raw) >= 1:
                facts.multiple_users = bool(raw[0] & _MULTIPLE_USERS)
            now = datetime.now(ZoneInfo(timezone)).replace(tzinfo=None)
            time_uuid = device_profile.time
            if time_uuid is not None:
                raw = await _read(client, time_uuid)
                device_time = None
                with contextlib.suppress(DecodeError, ValueError):
                    if raw is not None:
                        device_time = date_time(raw) if time_uuid == uuids.DATE_TIME else decode_current_time(raw)
                if device_time is not None:
                    facts.clock_offset_s = float(round((device_time - now).total_seconds()))  # whole seconds
                if set_clock and raw is not None:
                    value = encode_current_time(datetime.now(ZoneInfo(timezone)).replace(tzinfo=None))
                    if time_uuid == uuids.DATE_TIME:
                        value = value[:7]
                    with contextlib.suppress(BleakError):
                        await client.write_gatt_char(time_uuid, value, response=True)
                        facts.clock_set = True
        finally:
            with contextlib.suppress(BleakError, asyncio.TimeoutError):
                await client.disconnect()
    return facts


async def forget_bond(address: str, backends: BleBackends | None) -> None:
    """Remove the adapter's bond with a device (BlueZ: RemoveDevice), so it pairs with no-one through us."""
    b = backends or BleBackends()
    client = BleakClient(address, backend=b.client, **b.options)
    with contextlib.suppress(BleakError, NotImplementedError):
        await client.unpair()


class BondError(RuntimeError):
    """BlueZ could not remove a bond; the caller says what to do (a reissue stops and can be re-run)."""


async def remove_bond_bluez(address: str, *, adapter: str = "hci0", bus_address: str | None = None) -> bool:
    """Remove BlueZ's bond with a device through org.bluez.Adapter1.RemoveDevice — also when the device
    is out of range, which bleak's unpair needs it not to be. False: BlueZ had no such device (done)."""
    from dbus_fast import BusType, DBusError
    from dbus_fast.aio import MessageBus

    try:
        bus = await (MessageBus(bus_address=bus_address) if bus_address else
                     MessageBus(bus_type=BusType.SYSTEM)).connect()
    except (OSError, DBusError) as exc:
        raise BondError(f"cannot reach BlueZ on D-Bus to remove the bond of {address}: {exc}") from None
    try:
        path = f"/org/bluez/{adapter}"
        proxy = bus.get_proxy_object("org.bluez", path, await bus.introspect("org.bluez", path))
        manager: Any = proxy.get_interface("org.bluez.Adapter1")
        await manager.call_remove_device(f"{path}/dev_{address.upper().replace(':', '_')}")
        return True
    except DBusError as exc:
        if exc.type == "org.bluez.Error.DoesNotExist":
            return False
        if exc.type in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
            raise BondError(f"BlueZ is not running: cannot remove the bond of {address}") from None
        raise BondError(f"BlueZ refused to remove the bond of {address}: {exc.text}") from None
    finally:
        bus.disconnect()
