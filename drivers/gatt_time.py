"""The 7-byte Date Time field (0x2A08) embedded in health measurements."""

from __future__ import annotations

from datetime import datetime

from drivers.measurement import DecodeError

DATE_TIME_LENGTH = 7


def date_time(data: bytes, offset: int = 0) -> datetime | None:
    """Device wall-clock time (naive), or None when the device says year, month or day is unknown (0)."""
    if len(data) < offset + DATE_TIME_LENGTH:
        raise DecodeError(f"time stamp at byte {offset} is cut off: {len(data)} bytes in all")
    year = int.from_bytes(data[offset : offset + 2], "little")
    month, day, hour, minute, second = data[offset + 2 : offset + 7]
    if year == 0 or month == 0 or day == 0:
        return None
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise DecodeError(
            f"time stamp {year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d} is not a date: {exc}"
        ) from exc
