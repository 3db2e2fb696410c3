"""Device clocks are not trusted: keep the device's time, the receive time, and the correction applied.

Two rules hold for every record (docs/safety.md, hazard H1):
- a corrected time is never later than the receive time: nothing is measured in the future;
- a record that cannot be dated with confidence says so (`device_unverified`, `undated`), and is never
  silently re-dated by an offset that does not apply to it.

And one for the hour that happens twice (docs/safety.md, issue 18.7): a device's Date Time has no zone,
so a stamp from the repeated hour in October (02:00-02:59 in Oslo, first in summer time, then in standard time) is
resolved with the device's DST information when it has it (a DST offset, or a time stamp with its
offset), or by the order in which the device sent its records; otherwise it is marked ambiguous
(`device_unverified`), dated at the earlier of the two instants, and never before a record the device
sent earlier.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from protocol import TimeSource

# A device's own stamp older than this is not believed: no home device keeps a reading that long
# before it reaches a gateway, and a clock reset to 2000 produces stamps like that.
OLDEST_PLAUSIBLE = timedelta(days=365)
UNCERTAIN: frozenset[TimeSource] = frozenset({"device_unverified", "undated"})


class LocalTime(NamedTuple):
    """A device's stamp placed on the gateway's time line: what the next record of the same device
    (in the order it sent them) is resolved against."""

    wall: datetime  # the device's wall clock, naive
    utc: datetime
    fold: int  # 0: the first pass of a repeated hour (summer time), 1: the second
    ambiguous: bool  # in the repeated hour and nothing told which pass


class CorrectedTime(NamedTuple):
    effective: datetime  # UTC
    source: TimeSource
    correction_s: float | None  # seconds added to the device time; None when no correction could be applied
    ambiguous: bool = False  # `effective` is one of two instants an hour apart (the repeated hour)
    local: LocalTime | None = None  # how the device's stamp was read; pass it as `previous` for its next record


def repeated_hour(wall: datetime, zone: ZoneInfo) -> bool:
    """True when this naive wall time happens twice in `zone` (clocks going back)."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    offset_first, offset_second = first.utcoffset(), second.utcoffset()
    # In the gap of spring the folds differ the other way round (the wall time never happens).
    return offset_first is not None and offset_second is not None and offset_first > offset_second


def _at(wall: datetime, zone: ZoneInfo, fold: int, ambiguous: bool) -> LocalTime:
    return LocalTime(wall, wall.replace(tzinfo=zone, fold=fold).astimezone(UTC), fold, ambiguous)


def _fold_by_order(wall: datetime, zone: ZoneInfo, previous: LocalTime | None) -> int | None:
    """The pass of the repeated hour as the device's record order tells it: after a record known to be
    in the second pass, or a step back in the wall clock within the hour, it is the second pass. A
    device sends its stored records oldest first (RACP, and every memory transfer seen)."""
    if previous is None or previous.wall.date() != wall.date() or not repeated_hour(previous.wall, zone):
        return None
    if previous.fold == 1 and not previous.ambiguous:
        return 1
    return 1 if wall < previous.wall else None


def local_time(
    device_time: datetime, zone: ZoneInfo, *, dst: timedelta | None = None, previous: LocalTime | None = None
) -> LocalTime:
    """Place a device's stamp on the time line. A stamp with its offset is exact. A naive wall time in
    the repeated hour takes the pass whose DST offset is `dst` (the device's: GATT DST Offset, Time with
    DST, Local Time Information), else the pass its record order shows (`previous`: the same device's
    record sent just before, this session); else the first pass, marked ambiguous."""
    if device_time.tzinfo is not None:
        utc = device_time.astimezone(UTC)
        return LocalTime(utc.astimezone(zone).replace(tzinfo=None), utc, 0, False)
    if not repeated_hour(device_time, zone):
        return _at(device_time, zone, 0, False)
    if dst is not None:
        for fold in (0, 1):
            if device_time.replace(tzinfo=zone, fold=fold).dst() == dst:
                return _at(device_time, zone, fold, False)
    by_order = _fold_by_order(device_time, zone, previous)
    return _at(device_time, zone, 0, True) if by_order is None else _at(device_time, zone, by_order, False)


def _near(local: LocalTime, zone: ZoneInfo, received: datetime, tolerance: timedelta) -> LocalTime | None:
    """The pass that agrees with the receive time, if one does: a reading taken just now."""
    folds = (0, 1) if local.ambiguous else (local.fold,)
    for fold in folds:
        candidate = _at(local.wall, zone, fold, False) if local.ambiguous else local
        if abs(received - candidate.utc) <= tolerance:
            return candidate
    return None


def clock_offset(device_now: datetime, received: datetime, zone: ZoneInfo) -> timedelta:
    """Gateway time minus a device's clock read at `received`; in the repeated hour the pass nearer the
    receive time (a clock read in the second pass is not an hour off)."""
    local = local_time(device_now, zone)
    folds = (0, 1) if local.ambiguous else (local.fold,)
    return min((received - _at(local.wall, zone, fold, False).utc for fold in folds), key=abs)


def _plausible(when: datetime, received: datetime, tolerance: timedelta) -> bool:
    return received - OLDEST_PLAUSIBLE <= when <= received + tolerance


def _synced(local: LocalTime, received: datetime) -> CorrectedTime:
    # Within the tolerance a clock a little ahead still must not date a reading after it arrived.
    effective = min(local.utc, received)
    return CorrectedTime(effective, "device_synced", (effective - local.utc).total_seconds(), local=local)


def _own_stamp(local: LocalTime, received: datetime, correction: timedelta = timedelta(0)) -> CorrectedTime:
    """Dated by the device's stamp (and the clock's offset, if any); from the repeated hour without
    anything to tell the two passes apart, marked `device_unverified` and ambiguous."""
    effective = min(local.utc + correction, received)
    if local.ambiguous:
        return CorrectedTime(effective, "device_unverified", correction.total_seconds() or None, True, local)
    if correction:
        return CorrectedTime(effective, "device_unsynced", correction.total_seconds(), local=local)
    return CorrectedTime(effective, "device_synced", (effective - local.utc).total_seconds(), local=local)


def correct_live_time(
    device_time: datetime | None, received: datetime, zone: ZoneInfo, tolerance: timedelta, *,
    dst: timedelta | None = None, previous: LocalTime | None = None,
) -> CorrectedTime:
    """Time of a measurement delivered live (indicated as it was taken).

    A live measurement happened about when it arrived, so a device clock off by more than
    `tolerance` is corrected to the receive time and marked `device_unsynced`, with the correction
    recorded; the device's own time is kept beside it. In the repeated hour the receive time tells
    which pass it was.
    """
    if device_time is None:
        return CorrectedTime(received, "gateway_receive", None)
    local = local_time(device_time, zone, dst=dst, previous=previous)
    near = _near(local, zone, received, tolerance)
    if near is not None:
        return _synced(near, received)
    return CorrectedTime(received, "device_unsynced", (received - local.utc).total_seconds(), local=local)


def correct_with_device_clock(
    device_time: datetime | None, clock_offset: timedelta, received: datetime, zone: ZoneInfo, tolerance: timedelta,
    *, dst: timedelta | None = None, previous: LocalTime | None = None,
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
    can have been taken. A correction that lands more than a year back is as doubtful.

    A stamp from the repeated hour is read with `dst` and `previous` (see `local_time`); one nothing
    resolves is `device_unverified` and `ambiguous`."""
    if device_time is None:
        return CorrectedTime(received, "gateway_receive", None)
    local = local_time(device_time, zone, dst=dst, previous=previous)
    near = _near(local, zone, received, tolerance)
    if near is not None:
        return _synced(near, received)
    if abs(clock_offset) <= tolerance:
        # A right clock now; a stamp from before it was set (2000-01-01 + minutes) is still no date.
        return _own_stamp(local, received) if _plausible(local.utc, received, tolerance) else (
            CorrectedTime(received, "undated", None))
    corrected = local.utc + clock_offset
    if _plausible(corrected, received, tolerance):
        return _own_stamp(local, received, clock_offset)
    if _plausible(local.utc, received, tolerance):
        return CorrectedTime(min(local.utc, received), "device_unverified", None, local.ambiguous, local)
    return CorrectedTime(received, "undated", None)
