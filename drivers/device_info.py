"""Device Information strings, Battery Level (0x2A19), Current Time (0x2A2B) and Blood Pressure Feature (0x2A49).

What a session reads about a device, and the time it writes to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drivers.fields import Fields
from drivers.measurement import DecodeError


def decode_battery(data: bytes) -> int:
    """Battery Level (0x2A19) in percent, 0-100; `DecodeError` for anything above 100 or cut off."""
    level = Fields(data, "battery level").uint(1, "level")
    if level > 100:
        raise DecodeError(f"battery level {level} % is not a percentage")
    return level


def decode_string(data: bytes, what: str) -> str:
    """A Device Information string (manufacturer, model, serial, firmware...): UTF-8, NULs trimmed."""
    try:
        text = data.split(b"\x00", 1)[0].decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{what} is not UTF-8 text: {exc}") from None
    if not text.isprintable():
        raise DecodeError(f"{what} holds control characters")
    return text


CURRENT_TIME_LENGTH = 10


def decode_current_time(data: bytes) -> datetime | None:
    """Current Time (0x2A2B): Date Time, day of week, 1/256 s, adjust reason. None: the clock is unset."""
    f = Fields(data, "current time")
    when = f.date_time("exact time")
    f.uint(1, "day of week")
    fractions = f.uint(1, "fractions256")
    f.uint(1, "adjust reason")
    return None if when is None else when.replace(microsecond=fractions * 1_000_000 // 256)


def encode_current_time(when: datetime, *, manual: bool = True) -> bytes:
    """The 10 bytes of a Current Time (0x2A2B) value to write to a device's clock.

    Day of week 1 = Monday ... 7 = Sunday (not 0 = Sunday, a known bug in other gateways); adjust reason
    b0 = manual update. ValueError for a year a GATT Date Time cannot hold (1582-9999).
    """
    if not 1582 <= when.year <= 9999:
        raise ValueError(f"year {when.year} is outside what a GATT Date Time can hold")
    return (when.year.to_bytes(2, "little")
            + bytes([when.month, when.day, when.hour, when.minute, when.second, when.isoweekday(),
                     when.microsecond * 256 // 1_000_000, 0x01 if manual else 0x00]))


@dataclass(frozen=True)
class BloodPressureFeatures:
    """What a cuff says it can report (Blood Pressure Feature, 0x2A49), one flag per feature bit."""

    body_movement: bool
    cuff_fit: bool
    irregular_pulse: bool
    pulse_rate_range: bool
    measurement_position: bool
    multiple_bonds: bool


def decode_blood_pressure_feature(data: bytes) -> BloodPressureFeatures:
    """The feature bits 0-5 of Blood Pressure Feature (0x2A49); `DecodeError` if cut off."""
    bits = Fields(data, "blood pressure feature").uint(2, "features")
    return BloodPressureFeatures(*(bool(bits & (1 << i)) for i in range(6)))
