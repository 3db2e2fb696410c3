"""IEEE 11073 SFLOAT and the GATT Date Time, encoded from the specification's definitions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

SFLOAT_NAN = b"\xff\x07"
SFLOAT_NRES = b"\x00\x08"
SFLOAT_POSITIVE_INFINITY = b"\xfe\x07"
SFLOAT_NEGATIVE_INFINITY = b"\x02\x08"
SFLOAT_RESERVED = b"\x01\x08"

# Mantissas 2046..2047 and -2048..-2046 are the special values' patterns: keep clear of them.
_MANTISSA_LIMIT = 2045


def sfloat(value: Decimal | int | str, exponent: int = 0) -> bytes:
    """Encode value = mantissa * 10**exponent in 16 bits (4-bit exponent, 12-bit mantissa, two's complement)."""
    if not -8 <= exponent <= 7:
        raise ValueError(f"SFLOAT exponent {exponent} outside -8..7")
    mantissa = Decimal(value).scaleb(-exponent)
    if mantissa != mantissa.to_integral_value():
        raise ValueError(f"{value} is not a whole number of 10^{exponent}")
    m = int(mantissa)
    if not -_MANTISSA_LIMIT <= m <= _MANTISSA_LIMIT:
        raise ValueError(f"{value} needs mantissa {m}, outside the SFLOAT range at exponent {exponent}")
    raw = ((exponent & 0x0F) << 12) | (m & 0x0FFF)
    return raw.to_bytes(2, "little")


def date_time(when: datetime) -> bytes:
    """GATT Date Time (0x2A08): year uint16, month, day, hours, minutes, seconds."""
    return when.year.to_bytes(2, "little") + bytes(
        [when.month, when.day, when.hour, when.minute, when.second]
    )


def float32(value: Decimal | int | str, exponent: int = 0) -> bytes:
    """IEEE 11073 FLOAT: 8-bit exponent, 24-bit mantissa, two's complement."""
    mantissa = Decimal(value).scaleb(-exponent)
    if mantissa != mantissa.to_integral_value():
        raise ValueError(f"{value} is not a whole number of 10^{exponent}")
    m = int(mantissa)
    if not -(2**23 - 3) <= m <= 2**23 - 3:
        raise ValueError(f"{value} needs mantissa {m}, outside the FLOAT range")
    return (((exponent & 0xFF) << 24) | (m & 0xFFFFFF)).to_bytes(4, "little")


def current_time(when: datetime) -> bytes:
    """Current Time (0x2A2B): Date Time, day of week (1 = Monday), fractions256, adjust reason."""
    return date_time(when) + bytes([when.isoweekday(), 0, 0])


def parse_date_time(data: bytes) -> datetime | None:
    """What a device does with a Date Time or Current Time written to it (None: an invalid time)."""
    if len(data) < 7:
        return None
    try:
        return datetime(int.from_bytes(data[0:2], "little"), data[2], data[3], data[4], data[5], data[6])
    except ValueError:
        return None
