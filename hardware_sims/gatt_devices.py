"""Simulated health devices as real GATT peripherals on bumble: they advertise, serve the standard
services, indicate measurements, keep a memory, honour the Record Access Control Point, and can be
told to misbehave the way real devices do. Every byte is encoded here, not by the drivers.

Behaviour modelled on public evidence (shared/reference/device-protocols.md §4):
- like A&D cuffs, a device advertises after a measurement, sends what the gateway has not had yet
  once it subscribes, and may then disconnect by itself;
- like Omron and A&D, a device may resend its whole memory on every connection (`resends_history`);
- a pulse oximeter with storage answers RACP "report all" (01 01) with its stored spot-checks and a
  response code (06 00 01 01, or 06 00 01 06 when empty), and deletes them on 02 01.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bumble.core import UUID, AdvertisingData
from bumble.device import AdvertisingType, Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

import drivers.uuids as uuids
from hardware_sims import encoding
from hardware_sims.blood_pressure import BloodPressureMonitor, CuffResult
from hardware_sims.radio import VirtualRadio

OSLO = ZoneInfo("Europe/Oslo")
_P = Characteristic.Properties
_LOCAL_LINK_LOST = 0x08  # HCI "connection timeout": what a device walking out of range looks like


def _short(full_uuid: str) -> str:
    return full_uuid[4:8].upper()


@dataclass
class Faults:
    """What a device does wrong, switched on by tests, scenarios and technicians."""

    malformed_next: bool = False  # the next value sent is cut short
    disconnect_after: int | None = None  # drop the link after sending this many records
    silent: bool = False  # advertises, accepts the connection, answers nothing
    resends_history: bool = False  # sends its whole memory on every connection
    clock: datetime | None = None  # the device clock is stuck at this time (e.g. 2000-01-01 after batteries)
    record_after_report: bytes | None = None  # a measurement taken while the gateway downloads the memory


class GattDevice:
    kind: str = ""
    service_uuid: str = ""
    measurement_uuid: str = ""

    # Each kind's defaults: a random static address (top two bits set), a name, model and serial.
    default_address = ""
    default_name = ""
    default_model = ""
    default_serial = ""

    def __init__(self, radio: VirtualRadio, *, address: str | None = None, name: str | None = None,
                 model: str | None = None, serial: str | None = None, battery: int = 90,
                 clock_offset: timedelta = timedelta(0), disconnects_when_done: bool = True,
                 requires_bond: bool = False) -> None:
        self.address = address = address or self.default_address
        self.name = name = name or self.default_name
        self.model = model = model or self.default_model
        self.serial = serial = serial or self.default_serial
        self.battery = battery
        self.clock_offset = clock_offset
        self.disconnects_when_done = disconnects_when_done
        # Like A&D and the Blood Pressure Profile (security level 2): nothing is sent before encryption.
        self.requires_bond = requires_bond
        self.faults = Faults()
        self.pairing_mode = False  # advertises again after every connection, as a device held in pairing mode
        self.memory: list[bytes] = []  # everything measured, oldest first
        self.unsent: list[bytes] = []  # not yet delivered to a gateway
        self.time_writes: list[datetime | None] = []
        self.connections = 0
        self.device: Device = radio.new_device(name, address)
        self._connection: Connection | None = None
        self._subscribed = asyncio.Event()
        self.measurement_char = Characteristic(
            _short(self.measurement_uuid), _P.NOTIFY if self.notifies else _P.INDICATE, Characteristic.READABLE, b"")
        self.battery_char: Characteristic[bytes] = Characteristic(
            "2A19", _P.READ | _P.NOTIFY, Characteristic.READABLE,
            CharacteristicValue[bytes](read=lambda _c: bytes([self.battery])))
        self.time_char: Characteristic[bytes] = Characteristic(
            "2A2B", _P.READ | _P.WRITE | _P.NOTIFY, Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue[bytes](read=lambda _c: encoding.current_time(self.clock()), write=self._time_written))
        own = [self.measurement_char, *self.extra_characteristics()]
        self.device.add_service(Service(_short(self.service_uuid), own))
        self.device.add_service(Service("180F", [self.battery_char]))
        self.device.add_service(Service("1805", [self.time_char]))
        self.device.add_service(Service("180A", [
            Characteristic("2A29", _P.READ, Characteristic.READABLE, b"dho-sim"),
            Characteristic("2A24", _P.READ, Characteristic.READABLE, model.encode()),
            Characteristic("2A25", _P.READ, Characteristic.READABLE, serial.encode()),
            Characteristic("2A26", _P.READ, Characteristic.READABLE, b"1.0.0"),
        ]))
        self._tasks: set[asyncio.Task[None]] = set()
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        self.measurement_char.on(self.measurement_char.EVENT_SUBSCRIPTION, self._on_subscription)

    def extra_characteristics(self) -> list[Characteristic[bytes]]:
        return []

    # --- clock ------------------------------------------------------------------------------------
    def clock(self) -> datetime:
        if self.faults.clock is not None:
            return self.faults.clock
        return (datetime.now(OSLO) + self.clock_offset).replace(tzinfo=None, microsecond=0)

    def _time_written(self, _connection: Connection, value: bytes) -> None:
        when = encoding.parse_date_time(value)
        self.time_writes.append(when)
        if when is not None:
            self.faults.clock = None
            self.clock_offset = when - datetime.now(OSLO).replace(tzinfo=None, microsecond=0)

    # --- radio ------------------------------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task the device keeps until it is done: the event loop holds tasks only weakly,
        so an unreferenced one can be collected while it waits (a record or an advertisement that never
        comes, and a session that times out for no reason)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def power_on(self) -> None:
        await self.device.power_on()

    async def advertise(self) -> None:
        data = AdvertisingData([
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
            (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(_short(self.service_uuid)))),
        ])
        if not self.device.is_advertising:
            await self.device.start_advertising(advertising_data=bytes(data), auto_restart=False,
                                                advertising_interval_min=20, advertising_interval_max=20)

    def _on_connection(self, connection: Connection) -> None:
        self.connections += 1
        self._connection = connection
        self._subscribed.clear()
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection())

    def _on_disconnection(self) -> None:
        self._connection = None
        self._subscribed.clear()
        if self.pairing_mode or self.unsent or (self.uses_record_access and self.memory and not self.keeps_logbook):
            # Still holding data the gateway has not had, or records it has not deleted: advertise again so
            # the gateway comes back for them. A meter that keeps its logbook does not call for records
            # the gateway already fetched (it would otherwise be reconnected to for ever).
            self._spawn(self.advertise())

    def _on_subscription(self, _bearer: object, notify: bool, indicate: bool) -> None:
        encrypted = self._connection is not None and self._connection.is_encrypted
        if self.requires_bond and not encrypted:
            return
        if (notify if self.notifies else indicate) and not self.faults.silent:
            self._subscribed.set()
            self._spawn(self._send_on_subscribe())

    async def _send_on_subscribe(self) -> None:
        if self.uses_record_access:
            return  # the gateway asks through the RACP
        await asyncio.sleep(0.05)  # a real cuff gives the gateway a moment to write its clock
        batch = list(self.memory if self.faults.resends_history else self.unsent)
        sent = await self._send(batch)
        del self.unsent[:sent]
        if self.disconnects_when_done and self._connection is not None and sent == len(batch):
            await self.drop_link(0x13)  # remote user terminated: the cuff goes back to sleep

    uses_record_access = False
    keeps_logbook = False  # a record store that is never deleted (glucose meters)
    notifies = False  # glucose measurements are notified; the other health measurements indicated

    async def _send(self, values: list[bytes]) -> int:
        sent = 0
        for value in values:
            if self._connection is None:
                break
            if self.faults.disconnect_after is not None and sent >= self.faults.disconnect_after:
                self.faults.disconnect_after = None
                await self.drop_link(_LOCAL_LINK_LOST)
                break
            if self.faults.malformed_next:
                self.faults.malformed_next = False
                value = value[:3]
            if self.notifies:
                await self.device.notify_subscribers(self.measurement_char, value)
            else:
                await self.device.indicate_subscribers(self.measurement_char, value)
            sent += 1
        return sent

    async def forget_bond(self) -> None:
        """Fault: the device lost its pairing (reset, batteries out, paired to another phone)."""
        if self.device.keystore is not None:
            for name, _keys in await self.device.keystore.get_all():
                await self.device.keystore.delete(name)

    async def drop_link(self, reason: int = _LOCAL_LINK_LOST) -> None:
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(reason)

    async def record(self, value: bytes) -> None:
        """A measurement was taken: keep it, and advertise so the gateway comes for it."""
        self.memory.append(value)
        self.unsent.append(value)
        if self._subscribed.is_set() and not self.uses_record_access:
            del self.unsent[-1]
            await self._send([value])
        else:
            await self.advertise()


class BloodPressureCuff(GattDevice):
    kind = "blood_pressure"
    service_uuid = uuids.BLOOD_PRESSURE_SERVICE
    measurement_uuid = uuids.BLOOD_PRESSURE_MEASUREMENT

    default_address = "F0:5E:1A:00:00:01"
    default_name = "SIM-BPM"
    default_model = "SIM-BPM-1"
    default_serial = "SIMBPM0001"

    def __init__(self, radio: VirtualRadio, *, and_style: bool = False, **kwargs: Any) -> None:
        self.and_style = and_style
        super().__init__(radio, **kwargs)
        self.encoder = BloodPressureMonitor(address=self.address, model=self.model, serial=self.serial)

    def extra_characteristics(self) -> list[Characteristic[bytes]]:
        # Blood Pressure Feature: body movement, cuff fit, irregular pulse detection.
        extra: list[Characteristic[bytes]] = [Characteristic("2A49", _P.READ, Characteristic.READABLE, b"\x07\x00")]
        if self.and_style:
            # A&D UA-651BLE: the clock is a Date Time (0x2A08) inside the Blood Pressure service.
            extra.append(Characteristic("2A08", _P.READ | _P.WRITE, Characteristic.READABLE | Characteristic.WRITEABLE,
                                        CharacteristicValue[bytes](read=lambda _c: encoding.date_time(self.clock()),
                                                                   write=self._time_written)))
        return extra

    async def measure(self, result: CuffResult) -> bytes:
        value = self.encoder.measurement(result, self.clock())
        await self.record(value)
        return value


@dataclass(frozen=True)
class SpotCheck:
    spo2: int
    pulse: int | None  # None: sent as NaN (the oximeter could not compute the pulse)
    status: int | None = None  # Measurement Status bits


class RecordAccessDevice(GattDevice):
    """A device with a record store behind a Record Access Control Point (0x2A52)."""

    uses_record_access = True
    has_sequence = False  # records carry a sequence number the ">=" operator can filter on

    def __init__(self, radio: VirtualRadio, **kwargs: Any) -> None:
        self.racp: Characteristic[bytes] = Characteristic(
            "2A52", _P.WRITE | _P.INDICATE, Characteristic.WRITEABLE,
            CharacteristicValue[bytes](write=self._racp_written))
        self.deleted = 0
        self.requests: list[bytes] = []
        super().__init__(radio, **kwargs)

    def sequence_of(self, value: bytes) -> int | None:
        return None  # records without a sequence number: only "all records" can be asked for

    def _racp_written(self, _connection: Connection, value: bytes) -> None:
        if self.faults.silent:
            return
        self.requests.append(bytes(value))
        self._spawn(self._racp(bytes(value)))

    async def _racp(self, request: bytes) -> None:
        await asyncio.sleep(0.01)  # the write response goes out before the first record
        op, operator = (request + b"\x00\x00")[:2]
        if op == 0x01 and operator in (0x01, 0x03):  # report stored records: all, or >= a sequence number
            if operator == 0x03:
                if len(request) < 5 or request[2] != 0x01 or not self.has_sequence:
                    await self._respond(0x01, 0x04)  # operator not supported
                    return
                first = int.from_bytes(request[3:5], "little")
                batch = [v for v in self.memory if (self.sequence_of(v) or 0) >= first]
            else:
                batch = list(self.memory)
            if not batch:
                await self._respond(0x01, 0x06)
                return
            sent = await self._send(batch)
            self.unsent = [v for v in self.unsent if v not in batch[:sent]]  # reported: the gateway has had them
            if sent == len(batch):
                await self._respond(0x01, 0x01)
                if self.faults.record_after_report is not None:
                    self.memory.append(self.faults.record_after_report)
                    self.unsent.append(self.faults.record_after_report)
                    self.faults.record_after_report = None
        elif op == 0x02 and operator == 0x01:  # delete stored records: all
            self.deleted += len(self.memory)
            self.memory.clear()
            self.unsent.clear()
            await self._respond(0x02, 0x01)
        elif op == 0x04 and operator == 0x01:  # number of stored records
            count = len(self.memory).to_bytes(2, "little")
            await self.device.indicate_subscribers(self.racp, bytes([0x05, 0x00]) + count)
        else:
            await self._respond(op, 0x02)  # op code not supported

    async def _respond(self, op: int, code: int) -> None:
        if self._connection is not None:
            await self.device.indicate_subscribers(self.racp, bytes([0x06, 0x00, op, code]))


class PulseOximeter(RecordAccessDevice):
    kind = "spo2"
    service_uuid = uuids.PULSE_OXIMETER_SERVICE
    measurement_uuid = uuids.PLX_SPOT_CHECK

    default_address = "F0:5E:1A:00:00:02"
    default_name = "SIM-OXI"
    default_model = "SIM-OXI-1"
    default_serial = "SIMOXI0001"

    def extra_characteristics(self) -> list[Characteristic[bytes]]:
        # PLX Features: spot-check storage (b2) and time stamp (b3).
        return [Characteristic("2A60", _P.READ, Characteristic.READABLE, bytes([0x0C, 0x00])), self.racp]

    def encode(self, reading: SpotCheck) -> bytes:
        flags, tail = 0x01, encoding.date_time(self.clock())  # time stamp present
        if reading.status is not None:
            flags |= 0x02
            tail += reading.status.to_bytes(2, "little")
        pulse = encoding.SFLOAT_NAN if reading.pulse is None else encoding.sfloat(reading.pulse)
        return bytes([flags]) + encoding.sfloat(reading.spo2) + pulse + tail

    async def measure(self, reading: SpotCheck) -> bytes:
        value = self.encode(reading)
        await self.record(value)
        return value


@dataclass(frozen=True)
class PlxValue:
    """One value of a continuous oximeter's stream, with what the device says about it."""

    spo2: int
    pulse: int | None
    settling: bool = False  # PLX measurement status: measurement ongoing
    low_perfusion: bool = False  # PLX device and sensor status: low perfusion


class ContinuousOximeter(GattDevice):
    """A fingertip oximeter that streams PLX Continuous (0x2A5F) notifications while the finger is in,
    then goes quiet and drops the link when it is taken out. It keeps no memory."""

    kind = "spo2"
    service_uuid = uuids.PULSE_OXIMETER_SERVICE
    measurement_uuid = uuids.PLX_CONTINUOUS
    notifies = True

    default_address = "F0:5E:1A:00:00:07"
    default_name = "SIM-OXI-C"
    default_model = "SIM-OXI-C-1"
    default_serial = "SIMOXIC0001"

    @staticmethod
    def encode(spo2: int, pulse: int | None, *, settling: bool, low_perfusion: bool = False) -> bytes:
        """A pulse of None is sent as the SFLOAT NaN, as an oximeter does for a value it could not compute."""
        status = (1 << 5) if settling else 0  # measurement ongoing while the value settles
        flags, tail = 0x04, status.to_bytes(2, "little")
        if low_perfusion:  # Device and Sensor Status present, bit 5: low perfusion
            flags |= 0x08
            tail += (1 << 5).to_bytes(3, "little")
        return (bytes([flags]) + encoding.sfloat(spo2)
                + (encoding.SFLOAT_NAN if pulse is None else encoding.sfloat(pulse)) + tail)

    async def finger_in(self, stream: list[tuple[int, int, bool]] | list[PlxValue]) -> None:
        """Values to stream to the gateway once it subscribes: (spo2, pulse, settling) or `PlxValue`s."""
        values = [v if isinstance(v, PlxValue) else PlxValue(*v) for v in stream]
        self.unsent = [self.encode(v.spo2, v.pulse, settling=v.settling, low_perfusion=v.low_perfusion)
                       for v in values]
        await self.advertise()


class GlucoseMeter(RecordAccessDevice):
    """Glucose Service: notified measurements with sequence numbers, fetched with RACP ">= sequence"."""

    kind = "glucose"
    service_uuid = uuids.GLUCOSE_SERVICE
    measurement_uuid = uuids.GLUCOSE_MEASUREMENT
    notifies = True
    has_sequence = True
    keeps_logbook = True

    default_address = "F0:5E:1A:00:00:06"
    default_name = "SIM-GLUCO"
    default_model = "SIM-GLUCO-1"
    default_serial = "SIMGLUCO0001"

    def __init__(self, radio: VirtualRadio, **kwargs: Any) -> None:
        self.next_sequence = 1
        super().__init__(radio, **kwargs)

    def extra_characteristics(self) -> list[Characteristic[bytes]]:
        # Glucose Feature: low battery detection (b0), time fault (b9).
        return [Characteristic("2A51", _P.READ, Characteristic.READABLE, (0x0201).to_bytes(2, "little")), self.racp]

    def sequence_of(self, value: bytes) -> int | None:
        return int.from_bytes(value[1:3], "little") if len(value) >= 3 else None

    async def measure(self, mmol_per_l: Decimal | str, *, out_of_range: str | None = None) -> bytes:
        """A test; `out_of_range` "HI" or "LO" is the meter's own verdict (sensor status b5 / b6), sent
        with the meter's limit as the value."""
        # Concentration in mol/L (flags b1 present, b2 mol/L): mmol/L / 1000 at exponent -5.
        mol = Decimal(mmol_per_l) / 1000
        status = {None: None, "HI": 1 << 5, "LO": 1 << 6}[out_of_range]
        flags = 0x06 | (0x08 if status is not None else 0)  # b3: sensor status annunciation present
        value = (bytes([flags]) + self.next_sequence.to_bytes(2, "little") + encoding.date_time(self.clock())
                 + encoding.sfloat(mol, -5 if mol < Decimal("0.02") else -4)  # 12-bit mantissa
                 + bytes([0x11]))  # capillary whole blood, finger
        if status is not None:
            value += status.to_bytes(2, "little")
        self.next_sequence += 1
        await self.record(value)
        return value


class Scale(GattDevice):
    kind = "body_weight"
    service_uuid = uuids.WEIGHT_SCALE_SERVICE
    measurement_uuid = uuids.WEIGHT_MEASUREMENT

    default_address = "F0:5E:1A:00:00:03"
    default_name = "SIM-SCALE"
    default_model = "SIM-SCALE-1"
    default_serial = "SIMSCALE0001"

    def extra_characteristics(self) -> list[Characteristic[bytes]]:
        # Weight Scale Feature: time stamp, multiple users, resolution 0.1 kg (code 3).
        return [Characteristic("2A9E", _P.READ, Characteristic.READABLE, (0x03 | 3 << 3).to_bytes(4, "little"))]

    def encode(self, kg: Decimal, user: int | None) -> bytes:
        flags = 0x02 | (0x04 if user is not None else 0)
        value = bytes([flags]) + int(kg / Decimal("0.005")).to_bytes(2, "little") + encoding.date_time(self.clock())
        return value + (bytes([user]) if user is not None else b"")

    async def measure(self, kg: Decimal | str, user: int | None = None) -> bytes:
        value = self.encode(Decimal(kg), user)
        await self.record(value)
        return value


class Thermometer(GattDevice):
    kind = "body_temperature"
    service_uuid = uuids.HEALTH_THERMOMETER_SERVICE
    measurement_uuid = uuids.TEMPERATURE_MEASUREMENT

    default_address = "F0:5E:1A:00:00:04"
    default_name = "SIM-THERMO"
    default_model = "SIM-THERMO-1"
    default_serial = "SIMTHERMO0001"

    async def measure(self, celsius: Decimal | str) -> bytes:
        value = bytes([0x02]) + encoding.float32(Decimal(celsius), -1) + encoding.date_time(self.clock())
        await self.record(value)
        return value


class AdvertisingScale:
    """A Xiaomi-style scale: no GATT, the weight is broadcast in 0x181D service data while it settles and
    then, stable, many times over (theengs / openScale layout, encoded here)."""

    kind = "body_weight"

    def __init__(self, radio: VirtualRadio, *, address: str = "F0:5E:1A:00:00:05", name: str = "MI SCALE2",
                 repeats: int = 5, frame_s: float = 0.03) -> None:
        self.address = address
        self.name = name
        self.serial = address.replace(":", "")
        self.repeats = repeats
        self.frame_s = frame_s
        self.clock_offset = timedelta(0)
        self.device = radio.new_device(name, address)

    async def power_on(self) -> None:
        await self.device.power_on()

    def frame(self, kg: Decimal, *, stable: bool, removed: bool = False) -> bytes:
        status = 0x02 | (0x20 if stable else 0) | (0x80 if removed else 0)
        when = (datetime.now(OSLO) + self.clock_offset).replace(tzinfo=None, microsecond=0)
        return bytes([status]) + int(kg * 200).to_bytes(2, "little") + encoding.date_time(when)

    async def _broadcast(self, payload: bytes) -> None:
        data = AdvertisingData([
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
            (AdvertisingData.SERVICE_DATA_16_BIT_UUID, bytes(UUID("181D")) + payload),
        ])
        if self.device.is_advertising:
            await self.device.stop_advertising()
        await self.device.start_advertising(advertising_type=AdvertisingType.UNDIRECTED, advertising_data=bytes(data),
                                            advertising_interval_min=20, advertising_interval_max=20)
        await asyncio.sleep(self.frame_s)

    async def weigh(self, kg: Decimal | str) -> None:
        target = Decimal(kg)
        for settling in (target - Decimal("1.4"), target - Decimal("0.3")):
            await self._broadcast(self.frame(settling, stable=False))
        stable = self.frame(target, stable=True)
        for _ in range(self.repeats):
            await self._broadcast(stable)
        await self._broadcast(self.frame(target, stable=True, removed=True))
        await self.device.stop_advertising()


DEVICE_TYPES: dict[str, Callable[..., GattDevice]] = {
    "blood_pressure": BloodPressureCuff, "spo2": PulseOximeter, "body_weight": Scale,
    "body_temperature": Thermometer, "glucose": GlucoseMeter,
}


@dataclass
class Household:
    """Devices on one radio: the patient's, and any the neighbours have."""

    radio: VirtualRadio = field(default_factory=VirtualRadio)
    devices: list[GattDevice] = field(default_factory=list)

    async def add(self, device: GattDevice) -> GattDevice:
        await device.power_on()
        self.devices.append(device)
        return device
