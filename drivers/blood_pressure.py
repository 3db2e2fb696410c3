"""Blood Pressure Measurement (0x2A35), Blood Pressure Service 1.0 / GATT Specification Supplement."""

from __future__ import annotations

from decimal import Decimal

from drivers.gatt_time import DATE_TIME_LENGTH, date_time
from drivers.ieee11073 import SpecialValue, sfloat
from drivers.measurement import DecodeError, DeviceFlag, Measurement, MeasurementKind, Quantity

MMHG = "mm[Hg]"
PER_MINUTE = "/min"
_MMHG_PER_KPA = Decimal("7.50062")
_UNKNOWN_USER = 0xFF

_FLAG_KPA = 0x01
_FLAG_TIME_STAMP = 0x02
_FLAG_PULSE = 0x04
_FLAG_USER = 0x08
_FLAG_STATUS = 0x10

_STATUS_BITS = {
    0x0001: DeviceFlag.BODY_MOVEMENT,
    0x0002: DeviceFlag.CUFF_TOO_LOOSE,
    0x0004: DeviceFlag.IRREGULAR_PULSE,
    0x0020: DeviceFlag.IMPROPER_POSITION,
}
_PULSE_RANGE = {1: DeviceFlag.PULSE_ABOVE_RANGE, 2: DeviceFlag.PULSE_BELOW_RANGE}


def _pressure(raw: Decimal, in_kpa: bool) -> Quantity:
    if in_kpa:
        raw = (raw * _MMHG_PER_KPA).quantize(Decimal("0.1"))
    return Quantity(value=raw, unit=MMHG)


def decode_blood_pressure(data: bytes) -> Measurement:
    """Decode one 0x2A35 value. Extra trailing bytes are ignored, as GATT asks of clients."""
    if len(data) < 7:
        raise DecodeError(f"blood pressure measurement needs at least 7 bytes, got {len(data)}")
    flags = data[0]
    in_kpa = bool(flags & _FLAG_KPA)
    try:
        systolic = sfloat(data, 1)
        diastolic = sfloat(data, 3)
    except SpecialValue as exc:
        raise DecodeError(f"blood pressure not measured: systolic/diastolic is {exc}") from exc
    components = {"systolic": _pressure(systolic, in_kpa), "diastolic": _pressure(diastolic, in_kpa)}
    absent: dict[str, str] = {}
    try:
        components["mean"] = _pressure(sfloat(data, 5), in_kpa)
    except SpecialValue as exc:
        # Many cuffs do not compute the mean pressure and send NaN; the reading is still valid.
        absent["mean"] = str(exc)

    offset = 7
    device_time = None
    if flags & _FLAG_TIME_STAMP:
        device_time = date_time(data, offset)
        offset += DATE_TIME_LENGTH
    if flags & _FLAG_PULSE:
        try:
            components["pulse"] = Quantity(value=sfloat(data, offset), unit=PER_MINUTE)
        except SpecialValue as exc:
            absent["pulse"] = str(exc)
        offset += 2
    user_id = None
    if flags & _FLAG_USER:
        if len(data) < offset + 1:
            raise DecodeError(f"user id flagged but missing at byte {offset}")
        user_id = None if data[offset] == _UNKNOWN_USER else data[offset]
        offset += 1
    device_flags: set[DeviceFlag] = set()
    if flags & _FLAG_STATUS:
        if len(data) < offset + 2:
            raise DecodeError(f"measurement status flagged but missing at byte {offset}")
        status = int.from_bytes(data[offset : offset + 2], "little")
        device_flags |= {flag for bit, flag in _STATUS_BITS.items() if status & bit}
        pulse_range = (status >> 3) & 0x03
        if pulse_range in _PULSE_RANGE:
            device_flags.add(_PULSE_RANGE[pulse_range])
    return Measurement(
        kind=MeasurementKind.BLOOD_PRESSURE,
        components=components,
        device_time=device_time,
        flags=frozenset(device_flags),
        user_id=user_id,
        absent=absent,
    )
