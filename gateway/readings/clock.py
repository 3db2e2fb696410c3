"""Device clocks are not trusted: keep the device's time, the receive time, and the correction applied.

Two rules hold for every record (docs/safety.md, hazard H1):
- a corrected time is never later than the receive time: nothing is measured in the future;
- a record that cannot be dated with confidence says so (`device_unverified`, `undated`), and is never
  silently re-dated by an offset that does not apply to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from protocol import TimeSource

# A device's own stamp older than this is not believed: no home device keeps a reading that long
# before it reaches a gateway, and a clock reset to 2000 produces stamps like that.
OLDEST_PLAUSIBLE = timedelta(days=365)
UNCERTAIN: frozenset[TimeSource] = frozenset({"device_unverified", "undated"})


class CorrectedTime(NamedTuple):
    effective: datetime  # UTC
    source: TimeSource
    correction_s: float | None  # seconds added to the device time; None when no correction could be applied


def _plausible(when: datetime, received: datetime, tolerance: timedelta) -> bool:
    return received - OLDEST_PLAUSIBLE <= when <= received + tolerance


def _synced(device_utc: datetime, received: datetime) -> CorrectedTime:
    # Within the tolerance a clock a little ahead still must not date a reading after it arrived.
    effective = min(device_utc, received)
    return CorrectedTime(effective, "device_synced", (effective - device_utc).total_seconds())


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
        return _synced(device_utc, received)
    return CorrectedTime(received, "device_unsynced", offset.total_seconds())


def correct_with_device_clock(
    device_time: datetime | None, clock_offset: timedelta, received: datetime, zone: ZoneInfo, tolerance: timedelta
) -> CorrectedTime:
    """Time of a measurement from a device whose clock was read at the start of this session, before
    the gateway set it (`clock_offset` = gateway time - device time then). Right for records taken hours
    or days ago and fetched from the device's memory, where the receive time says nothing about when
    they were taken. A record whose time stamp agrees with the receive time was taken under a right
    clock (just now, or after the gateway set it): it is synced whatever the offset was.

    The offset only applies to records stamped under the clock as it is now. A record stamped later
    than the device's clock now reads (corrected, it would lie in the future) was stamped before the
    clock was reset, under another setting: the offset says nothing about it. Its own stamp is kept
    when plausible (`device_unverified`); otherwise it is `undated` at the receive time, the latest it
    can have been taken. A correction that lands more than a year back is as doubtful."""
    if device_time is None:
        return CorrectedTime(received, "gateway_receive", None)
    device_utc = device_time.replace(tzinfo=zone).astimezone(received.tzinfo)
    if abs(received - device_utc) <= tolerance:
        return _synced(device_utc, received)
    if abs(clock_offset) <= tolerance:
        # A right clock now; a stamp from before it was set (2000-01-01 + minutes) is still no date.
        return _synced(device_utc, received) if _plausible(device_utc, received, tolerance) else (
            CorrectedTime(received, "undated", None))
    corrected = device_utc + clock_offset
    if _plausible(corrected, received, tolerance):
        return CorrectedTime(min(corrected, received), "device_unsynced", clock_offset.total_seconds())
    if _plausible(device_utc, received, tolerance):
        return CorrectedTime(min(device_utc, received), "device_unverified", None)
    return CorrectedTime(received, "undated", None)
