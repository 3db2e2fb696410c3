"""Dating a measurement: the device's clock is read at the start of a session and never trusted blindly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from drivers.gatt_time import date_time, local_time_information, time_with_dst, with_offset
from drivers.measurement import DecodeError
from gateway.readings.clock import clock_offset, correct_live_time, correct_with_device_clock

OSLO = ZoneInfo("Europe/Oslo")
RECEIVED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Oslo
TOLERANCE = timedelta(minutes=5)


@pytest.mark.parametrize(("offset_min", "source"), [(4, "device_synced"), (5, "device_synced"),
                                                    (6, "device_unsynced")])
def test_a_stored_record_is_dated_by_the_device_clock_offset_with_an_inclusive_tolerance(
    offset_min: int, source: str
) -> None:
    taken = datetime(2026, 11, 21, 8, 0)  # three days ago, local time on the device
    when = correct_with_device_clock(taken, timedelta(minutes=offset_min), RECEIVED, OSLO, TOLERANCE)
    assert when.source == source
    expected = datetime(2026, 11, 21, 7, 0, tzinfo=UTC) + (timedelta(minutes=offset_min) if source != "device_synced"
                                                          else timedelta(0))
    assert when.effective == expected
    assert when.correction_s == (0.0 if source == "device_synced" else offset_min * 60.0)


def test_a_clock_reset_to_2000_dates_its_records_by_the_offset_and_says_so() -> None:
    device_now = datetime(2000, 1, 1, 0, 10)
    offset = RECEIVED - device_now.replace(tzinfo=OSLO).astimezone(UTC)
    when = correct_with_device_clock(datetime(2000, 1, 1, 0, 2), offset, RECEIVED, OSLO, TOLERANCE)
    assert when.source == "device_unsynced" and when.effective == RECEIVED - timedelta(minutes=8)


def test_a_record_that_agrees_with_the_receive_time_was_taken_under_a_right_clock() -> None:
    when = correct_with_device_clock(datetime(2026, 11, 24, 10, 0), timedelta(days=9000), RECEIVED, OSLO, TOLERANCE)
    assert when.source == "device_synced" and when.effective == RECEIVED


def test_live_rule_without_a_clock_reading() -> None:
    assert correct_live_time(None, RECEIVED, OSLO, TOLERANCE).source == "gateway_receive"
    late = correct_live_time(datetime(2026, 11, 24, 9, 0), RECEIVED, OSLO, TOLERANCE)
    assert late.source == "device_unsynced" and late.effective == RECEIVED and late.correction_s == 3600.0


# ---- issue 9.1: a clock reset must never date a record after it was received --------------------

def _offset_when_the_clock_reads(device_now: datetime) -> timedelta:
    return RECEIVED - device_now.replace(tzinfo=OSLO).astimezone(UTC)


def test_a_record_stamped_before_a_clock_reset_keeps_its_own_plausible_stamp_marked_unverified() -> None:
    # The scale's clock reads 2000 after a battery change; its memory still holds a record stamped
    # under the right clock in May. The offset would date it in 2052.
    offset = _offset_when_the_clock_reads(datetime(2000, 1, 1, 0, 10))
    when = correct_with_device_clock(datetime(2026, 5, 2, 10, 0), offset, RECEIVED, OSLO, TOLERANCE)
    assert when.effective == datetime(2026, 5, 2, 8, 0, tzinfo=UTC)  # the device's own stamp
    assert when.source == "device_unverified" and when.correction_s is None


def test_a_record_whose_own_stamp_is_implausible_too_is_marked_undated_at_the_receive_time() -> None:
    offset = _offset_when_the_clock_reads(datetime(2000, 1, 1, 0, 10))
    for stamp in (datetime(2031, 1, 1, 9, 0), datetime(2019, 3, 1, 9, 0)):  # future; years before
        when = correct_with_device_clock(stamp, offset, RECEIVED, OSLO, TOLERANCE)
        assert when.source == "undated" and when.effective == RECEIVED, stamp


def test_a_corrected_time_is_never_later_than_the_receive_time() -> None:
    # Within the tolerance but a little ahead: synced, and dated at the receive time, not after it.
    ahead = correct_with_device_clock(datetime(2026, 11, 24, 10, 3), timedelta(minutes=-3), RECEIVED, OSLO, TOLERANCE)
    assert ahead.source == "device_synced" and ahead.effective == RECEIVED
    live = correct_live_time(datetime(2026, 11, 24, 10, 4), RECEIVED, OSLO, TOLERANCE)
    assert live.effective == RECEIVED


@pytest.mark.parametrize("device_now", [datetime(2000, 1, 1, 0, 10), datetime(2026, 11, 24, 10, 0),
                                        datetime(2040, 6, 1, 12, 0)])
@pytest.mark.parametrize("stamp", [datetime(2000, 1, 1, 0, 2), datetime(2026, 5, 2, 10, 0),
                                   datetime(2026, 11, 24, 9, 58), datetime(2040, 6, 1, 11, 0),
                                   datetime(2099, 12, 31, 23, 59)])
def test_no_combination_of_clock_and_stamp_dates_a_record_in_the_future(device_now: datetime, stamp: datetime) -> None:
    when = correct_with_device_clock(stamp, _offset_when_the_clock_reads(device_now), RECEIVED, OSLO, TOLERANCE)
    assert when.effective <= RECEIVED
    assert when.effective >= RECEIVED - timedelta(days=366)


# ---- issue 18.9: the cap itself, in the one branch where a correction can land after the receive time ---

def test_a_correction_landing_within_the_tolerance_after_the_receive_time_is_capped_at_it() -> None:
    # The device's clock runs an hour behind (it reads 09:00 at 10:00 in Oslo) and its memory holds a
    # record stamped 09:03 on that clock: the record's own stamp is nowhere near the receive time, so
    # the offset applies, and the corrected time, 10:03 in Oslo, lies three minutes after the reading
    # arrived: within the tolerance, so it is believed, but never later than the receive time.
    offset = _offset_when_the_clock_reads(datetime(2026, 11, 24, 9, 0))
    assert offset == timedelta(hours=1)
    for minutes in range(1, 6):  # 1..5 min ahead: every value inside the tolerance
        when = correct_with_device_clock(datetime(2026, 11, 24, 9, minutes), offset, RECEIVED, OSLO, TOLERANCE)
        assert when.source == "device_unsynced", minutes
        assert when.effective == RECEIVED, minutes
        assert when.correction_s == 3600.0


@pytest.mark.parametrize("behind_min", [6, 30, 60, 24 * 60, 200 * 24 * 60])
@pytest.mark.parametrize("ahead_s", [0, 1, 59, 60, 299, 300, 301, 3600])
def test_a_clock_behind_never_dates_a_record_stamped_after_its_own_now_in_the_future(
    behind_min: int, ahead_s: int
) -> None:
    # Every clock that is behind (offset beyond the tolerance) and every stamp up to an hour after what
    # that clock reads now: whatever the branch, nothing is dated after it was received.
    device_now = datetime(2026, 11, 24, 10, 0) - timedelta(minutes=behind_min)
    stamp = device_now + timedelta(seconds=ahead_s)
    when = correct_with_device_clock(stamp, _offset_when_the_clock_reads(device_now), RECEIVED, OSLO, TOLERANCE)
    assert when.effective <= RECEIVED, (when, stamp)


# ---- issue 18.7: the repeated hour in October -------------------------------------------------------
# Europe/Oslo, 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET; 02:00-02:59 happens twice, first
# in summer time (UTC+2), then in standard time (UTC+1). A device's Date Time has no zone: 02:10 alone does
# not say which.

AFTER_THE_NIGHT = datetime(2026, 10, 25, 9, 0, tzinfo=UTC)  # the morning after: records fetched from memory
RIGHT_CLOCK = timedelta(0)


def stamp(hour: int, minute: int) -> datetime:
    return datetime(2026, 10, 25, hour, minute)


def test_a_stamp_from_the_repeated_hour_without_dst_information_is_marked_ambiguous_not_read_as_summer_time() -> None:
    when = correct_with_device_clock(stamp(2, 10), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE)
    assert when.ambiguous
    assert when.source == "device_unverified"  # on the wire: a time the gateway could not verify
    assert when.effective in (datetime(2026, 10, 25, 0, 10, tzinfo=UTC), datetime(2026, 10, 25, 1, 10, tzinfo=UTC))
    # Outside the repeated hour nothing changes.
    for h, m in ((1, 59), (3, 0)):
        plain = correct_with_device_clock(stamp(h, m), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE)
        assert not plain.ambiguous and plain.source == "device_synced"


@pytest.mark.parametrize(("dst", "utc_hour"), [(timedelta(hours=1), 0), (timedelta(0), 1)])
def test_the_repeated_hour_is_resolved_with_the_devices_dst_offset(dst: timedelta, utc_hour: int) -> None:
    when = correct_with_device_clock(stamp(2, 10), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE, dst=dst)
    assert when.effective == datetime(2026, 10, 25, utc_hour, 10, tzinfo=UTC)
    assert not when.ambiguous and when.source == "device_synced"


def test_a_timestamp_with_its_offset_is_exact() -> None:
    cet = timezone(timedelta(hours=1))
    when = correct_with_device_clock(datetime(2026, 10, 25, 2, 10, tzinfo=cet), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO,
                                     TOLERANCE)
    assert when.effective == datetime(2026, 10, 25, 1, 10, tzinfo=UTC) and not when.ambiguous
    live = correct_live_time(datetime(2026, 10, 25, 2, 10, tzinfo=cet), datetime(2026, 10, 25, 1, 10, 30, tzinfo=UTC),
                             OSLO, TOLERANCE)
    assert live.effective == datetime(2026, 10, 25, 1, 10, tzinfo=UTC) and live.source == "device_synced"


def test_stored_records_from_the_repeated_hour_are_ordered_as_they_arrived() -> None:
    # The review's case: a scale's memory holds 01:50 and 02:50 in summer time, then (clocks back) 02:10 and
    # 02:40 in standard time, then 03:05; the device sends them oldest first. True times 23:50, 00:50,
    # 01:10, 01:40, 02:05 UTC.
    previous = None
    dated = []
    for h, m in ((1, 50), (2, 50), (2, 10), (2, 40), (3, 5)):
        when = correct_with_device_clock(stamp(h, m), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE, previous=previous)
        previous = when.local
        dated.append(when)
    assert [w.effective for w in dated] == sorted(w.effective for w in dated)  # never before a record sent earlier
    # 02:10 after 02:50: the device's clock went back, so 02:10 and all after it are in standard time.
    assert [w.effective.strftime("%H:%M") for w in dated] == ["23:50", "00:50", "01:10", "01:40", "02:05"]
    # 02:50 has nothing after it in the hour to tell it apart by itself; the rest are resolved.
    assert [w.ambiguous for w in dated] == [False, True, False, False, False]


def test_without_a_step_back_the_repeated_hour_stays_ambiguous_and_in_arrival_order() -> None:
    # 02:10 in summer time, 02:50 in standard time: nothing tells them apart (true 00:10 and 01:50 UTC).
    first = correct_with_device_clock(stamp(2, 10), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE)
    second = correct_with_device_clock(stamp(2, 50), RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE,
                                       previous=first.local)
    assert first.ambiguous and second.ambiguous
    assert first.effective < second.effective


def test_a_live_reading_in_the_repeated_hour_is_resolved_by_when_it_arrived() -> None:
    for received in (datetime(2026, 10, 25, 0, 10, 20, tzinfo=UTC), datetime(2026, 10, 25, 1, 10, 20, tzinfo=UTC)):
        when = correct_live_time(stamp(2, 10), received, OSLO, TOLERANCE)
        assert when.source == "device_synced" and not when.ambiguous, received
        assert when.effective == received - timedelta(seconds=20)
        stored = correct_with_device_clock(stamp(2, 10), RIGHT_CLOCK, received, OSLO, TOLERANCE)
        assert stored.source == "device_synced" and stored.effective == received - timedelta(seconds=20)


def test_a_device_clock_read_in_the_second_pass_of_the_repeated_hour_is_not_an_hour_off() -> None:
    # The clock offset that dates a session's stored records: read at 01:10:05 UTC (02:10:05 CET) from a
    # right clock showing 02:10:00.
    read_at = datetime(2026, 10, 25, 1, 10, 5, tzinfo=UTC)
    assert clock_offset(stamp(2, 10), read_at, OSLO) == timedelta(seconds=5)
    assert clock_offset(stamp(2, 10), read_at - timedelta(hours=1), OSLO) == timedelta(seconds=5)  # first pass
    assert clock_offset(datetime(2026, 11, 24, 9, 0), RECEIVED, OSLO) == timedelta(hours=1)  # an hour behind


# ---- the device's DST information, from its bytes -------------------------------------------------------

def test_the_repeated_hour_resolved_from_a_time_with_dst_and_from_local_time_information() -> None:
    date_time_0210 = bytes([0xEA, 0x07, 10, 25, 2, 10, 0])  # 2026-10-25 02:10:00
    for code, utc_hour in ((4, 0), (0, 1)):  # summer time (+1 h), standard time
        wall, dst = time_with_dst(date_time_0210 + bytes([code]))
        when = correct_with_device_clock(wall, RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE, dst=dst)
        assert when.effective == datetime(2026, 10, 25, utc_hour, 10, tzinfo=UTC) and not when.ambiguous
    # Unknown DST (255): nothing to resolve with, so ambiguous.
    wall, dst = time_with_dst(date_time_0210 + bytes([255]))
    assert dst is None
    assert correct_with_device_clock(wall, RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE, dst=dst).ambiguous
    # Norway in standard time: zone +4 (15-minute steps), DST 0: the stamp is one instant.
    zone, dst = local_time_information(bytes([4, 0]))
    stamped = with_offset(date_time(date_time_0210), zone, dst)
    assert stamped == datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert not correct_with_device_clock(stamped, RIGHT_CLOCK, AFTER_THE_NIGHT, OSLO, TOLERANCE).ambiguous
    assert with_offset(date_time(date_time_0210), *local_time_information(bytes([0x80, 4]))) == stamp(2, 10)


@pytest.mark.parametrize("data", [bytes([4, 3]), bytes([57, 0]), bytes([4])])
def test_dst_information_a_device_cannot_mean_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        local_time_information(data)
