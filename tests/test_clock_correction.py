"""Dating a measurement: the device's clock is read at the start of a session and never trusted blindly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.readings import correct_live_time, correct_with_device_clock

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
