"""Device clocks are not trusted: keep the device's time, the receive time, and the correction applied."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sync.wire import TimeSource


class CorrectedTime(NamedTuple):
    effective: datetime  # UTC
    source: TimeSource
    correction_s: float | None  # seconds added to the device time; None when no device time was used


def correct_live_time(
    device_time: datetime | None, received: datetime, zone: ZoneInfo, tolerance: timedelta
) -> CorrectedTime:
    """Time of a measurement delivered live (indicated as it was taken).

    A live measurement happened about when it arrived, so a device clock off by more than
    `tolerance` is corrected to the receive time and marked `device_unsynced`, with the correction
    recorded; the device's own time is kept beside it.
    """
    if device_time is None:
        return CorrectedTime(received, "gateway_receive", None)
    device_utc = device_time.replace(tzinfo=zone).astimezone(received.tzinfo)
    offset = received - device_utc
    if abs(offset) <= tolerance:
        return CorrectedTime(device_utc, "device_synced", 0.0)
    return CorrectedTime(device_utc + offset, "device_unsynced", offset.total_seconds())


def correct_with_device_clock(
    device_time: datetime | None, clock_offset: timedelta, received: datetime, zone: ZoneInfo, tolerance: timedelta
) -> CorrectedTime:
    """Time of a measurement from a device whose clock was read at the start of this session, before
    the gateway set it (`clock_offset` = gateway time - device time then). Right for records taken hours
    or days ago and fetched from the device's memory, where the receive time says nothing about when
    they were taken. A record whose time stamp agrees with the receive time was taken under a right
    clock (just now, or after the gateway set it): it is synced whatever the offset was."""
    if device_time is None:
        return CorrectedTime(received, "gateway_receive", None)
    device_utc = device_time.replace(tzinfo=zone).astimezone(received.tzinfo)
    if abs(clock_offset) <= tolerance or abs(received - device_utc) <= tolerance:
        return CorrectedTime(device_utc, "device_synced", 0.0)
    return CorrectedTime(device_utc + clock_offset, "device_unsynced", clock_offset.total_seconds())
