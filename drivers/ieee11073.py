"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) as used by the Bluetooth health profiles."""

from __future__ import annotations

from decimal import Decimal

from drivers.measurement import DecodeError

_SFLOAT_SPECIAL = {
    0x07FF: "NaN (the device reports an invalid result)",
    0x0800: "NRes (value not at this resolution or out of range)",
    0x07FE: "+INFINITY",
    0x0802: "-INFINITY",
    0x0801: "a reserved special value",
}
_FLOAT_SPECIAL = {
    0x007FFFFF: "NaN (the device reports an invalid result)",
    0x00800000: "NRes (value not at this resolution or out of range)",
    0x007FFFFE: "+INFINITY",
    0x00800002: "-INFINITY",
    0x00800001: "a reserved special value",
}


class SpecialValue(DecodeError):
    """The field holds one of the special values: not a number, whatever its bits look like."""


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def sfloat(data: bytes, offset: int = 0) -> Decimal:
    """The IEEE-11073 16-bit SFLOAT at `offset`, exactly (12-bit mantissa, 4-bit base-10 exponent).

    Raises `SpecialValue` for NaN, NRes, +/-INFINITY and the reserved value, `DecodeError` when cut off.
    """
    if len(data) < offset + 2:
        raise DecodeError(f"SFLOAT at byte {offset} is cut off: {len(data)} bytes in all")
    raw = int.from_bytes(data[offset : offset + 2], "little")
    if raw in _SFLOAT_SPECIAL:
        raise SpecialValue(_SFLOAT_SPECIAL[raw])
    return Decimal(_signed(raw & 0x0FFF, 12)).scaleb(_signed(raw >> 12, 4))


def float32(data: bytes, offset: int = 0) -> Decimal:
    """The IEEE-11073 32-bit FLOAT at `offset`, exactly (24-bit mantissa, 8-bit base-10 exponent).

    Raises `SpecialValue` for NaN, NRes, +/-INFINITY and the reserved value, `DecodeError` when cut off.
    """
    if len(data) < offset + 4:
        raise DecodeError(f"FLOAT at byte {offset} is cut off: {len(data)} bytes in all")
    raw = int.from_bytes(data[offset : offset + 4], "little")
    if raw in _FLOAT_SPECIAL:
        raise SpecialValue(_FLOAT_SPECIAL[raw])
    return Decimal(_signed(raw & 0xFFFFFF, 24)).scaleb(_signed(raw >> 24, 8))
