"""The 7-byte Date Time field (0x2A08) embedded in health measurements, and the DST information a device may give."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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


# ---- DST information (issue 18.7: the repeated hour in October) -----------------------------------------

TIME_WITH_DST_LENGTH = 8
# DST Offset (0x2A0D, also the last byte of Time with DST 0x2A11 and Local Time Information 0x2A0F).
_DST_CODES = {0: timedelta(0), 2: timedelta(minutes=30), 4: timedelta(hours=1), 8: timedelta(hours=2)}
DST_UNKNOWN = 255
ZONE_UNKNOWN = -128


def dst_offset(code: int) -> timedelta | None:
    """A GATT DST Offset code as a duration: 0 standard time, 2 +0.5 h, 4 +1 h, 8 +2 h; None for 255 (unknown).

    Any other code is a DecodeError: a device that sends one cannot be trusted to tell summer from winter.
    """
    if code == DST_UNKNOWN:
        return None
    try:
        return _DST_CODES[code]
    except KeyError:
        raise DecodeError(f"DST offset code {code} is not one of 0, 2, 4, 8 or 255 (unknown)") from None


def time_with_dst(data: bytes, offset: int = 0) -> tuple[datetime | None, timedelta | None]:
    """Time with DST (0x2A11): a Date Time and the DST offset in force when it was stamped.

    Returns (device wall-clock time, naive; DST offset or None when unknown). The DST offset is what
    tells the two passes of the repeated hour apart (`gateway.readings.clock.local_time(dst=...)`).
    """
    if len(data) < offset + TIME_WITH_DST_LENGTH:
        raise DecodeError(f"time with DST at byte {offset} is cut off: {len(data)} bytes in all")
    return date_time(data, offset), dst_offset(data[offset + DATE_TIME_LENGTH])


def local_time_information(data: bytes) -> tuple[timedelta | None, timedelta | None]:
    """Local Time Information (0x2A0F): (time zone without DST, DST offset), each None when unknown.

    The zone is a signed byte in 15-minute steps (-48..+56; -128 unknown); Norway is +4 (one hour).
    """
    if len(data) < 2:
        raise DecodeError(f"local time information is cut off: {len(data)} bytes, 2 expected")
    zone = int.from_bytes(data[0:1], "little", signed=True)
    if zone != ZONE_UNKNOWN and not -48 <= zone <= 56:
        raise DecodeError(f"time zone {zone} (15-minute steps) is outside -48..+56")
    return (None if zone == ZONE_UNKNOWN else timedelta(minutes=15 * zone)), dst_offset(data[1])


def with_offset(wall: datetime | None, zone: timedelta | None, dst: timedelta | None) -> datetime | None:
    """A device's wall-clock stamp with its UTC offset (zone + DST) when the device gave both, else as it was.

    A stamp with its offset is one instant, also in the repeated hour; without, the gateway's zone and
    the record's order have to tell (docs/safety.md, issue 18.7).
    """
    if wall is None or zone is None or dst is None:
        return wall
    return wall.replace(tzinfo=timezone(zone + dst))
