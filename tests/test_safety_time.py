"""Issue 9.1 end to end through the pipeline: a scale's clock reset after ten daily weighings must not
date a stored record decades ahead, shrink the history, or push the next due date into 2052."""

from __future__ import annotations

import functools
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers import uuids
from drivers.device_info import encode_current_time
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, uuid7
from gateway.service import Gateway, IdleDeviceSource
from gateway.settings import DeviceSection, build_settings
from gateway.storage import SealedOutbox, load_or_create_key
from hardware_sims import encoding
from tests.support import take
from zoning import PastReading, next_due, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
SCALE = "F0:5E:1A:00:00:31"


def weighing(kg: str, stamp: datetime) -> bytes:
    """Weight Measurement (0x2A9D) in kg at 0.005 kg, with the scale's time stamp (local, no zone)."""
    return bytes([0x02]) + int(Decimal(kg) / Decimal("0.005")).to_bytes(2, "little") + encoding.date_time(stamp)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_a_clock_reset_keeps_the_history_and_the_schedule(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 4, 23, 5, 0, tzinfo=UTC))
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    plan = standard_plan(load_profile("standard-heart-failure"), load_advice(), date(2026, 4, 1))
    scale = DeviceSection(address=SCALE, kind=MeasurementKind.BODY_WEIGHT)
    pipeline = Pipeline(patient="p-test", devices={SCALE: scale}, plan=plan, outbox=outbox, zone=OSLO,
                        clock_tolerance=timedelta(minutes=5), now=clock)
    for day in range(10):  # 2026-04-23 .. 2026-05-02, 07:00 local, right clock, delivered at once
        taken = datetime(2026, 4, 23, 7, 0) + timedelta(days=day)
        clock.now = taken.replace(tzinfo=OSLO).astimezone(UTC)
        assert await take(pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, weighing("80.0", taken)) is not None
    # The next morning the batteries were changed: the clock reads 2000-01-01, and the scale's memory
    # still holds a weighing stamped under the right clock (2026-05-02 10:00) that never reached us.
    clock.now = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)
    await take(pipeline, SCALE, uuids.CURRENT_TIME, encode_current_time(datetime(2000, 1, 1, 0, 10)))
    reading = await take(pipeline, SCALE, uuids.WEIGHT_MEASUREMENT,
                                           weighing("80.2", datetime(2026, 5, 2, 10, 0)))
    assert reading is not None
    assert reading.effective == datetime(2026, 5, 2, 8, 0, tzinfo=UTC) and reading.time_source == "device_unverified"
    assert reading.effective <= reading.received
    # The sealed history the next weighing is judged by: all eleven, nothing pruned on disk. (In memory the
    # pipeline keeps only the latest day per kind; longer windows are read from the outbox.)
    kept = pipeline.past(MeasurementKind.BODY_WEIGHT, clock.now)
    assert len(kept) == 11 and all(isinstance(p, PastReading) for p in kept)
    assert max(p.effective for p in pipeline.history) == datetime(2026, 5, 2, 8, 0, tzinfo=UTC)
    assert next_due(plan.enrolled, pipeline.history, OSLO).on < date(2026, 5, 11)
    outbox.close()


def gateway_with_scale(tmp_path: Path) -> Gateway:
    return Gateway(build_settings({
        "gateway": {"id": "gw-time", "tenant": "t", "patient": "p-time", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": 1, "insecure_dev": True},
        "zoning": {"profile": "standard-heart-failure"},
        "devices": [{"address": SCALE, "kind": "body_weight", "serial": "SCALE-1"}],
    }), IdleDeviceSource())


async def test_an_undatable_reading_is_an_event_for_the_nurse_once_per_device_and_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = gateway_with_scale(tmp_path)
    events: list[tuple[str, dict[str, object] | None]] = []
    monkeypatch.setattr(gateway.uplink, "post_event", lambda kind, detail=None: events.append((kind, detail)))
    sink = functools.partial(take, gateway.pipeline)
    await sink(SCALE, uuids.CURRENT_TIME, encode_current_time(datetime(2000, 1, 1, 0, 10)))
    local_now = datetime.now(OSLO).replace(tzinfo=None, microsecond=0)
    first = await sink(SCALE, uuids.WEIGHT_MEASUREMENT, weighing("80.0", local_now - timedelta(days=3)))
    second = await sink(SCALE, uuids.WEIGHT_MEASUREMENT, weighing("80.4", local_now - timedelta(days=2)))
    assert first is not None and second is not None
    assert first.time_source == second.time_source == "device_unverified"
    assert events == [("reading_time_uncertain",
                       {"device": "SCALE-1", "reading": str(first.id), "time_source": "device_unverified"})]
    # A right clock: no event.
    await sink(SCALE, uuids.CURRENT_TIME, encode_current_time(local_now))
    assert (await sink(SCALE, uuids.WEIGHT_MEASUREMENT, weighing("80.6", local_now))) is not None
    assert len(events) == 1
    gateway.outbox.close()


DAY = 86400.0


def test_pruning_keeps_what_was_stored_lately_whatever_it_claims_and_drops_what_was_stored_long_ago(
        tmp_path: Path) -> None:
    # Issue 18.9: `test_storage_faults.py::test_pruning_follows_when_readings_were_stored_not_the_time_
    # they_claim` passes as well when history is pruned by the time a reading claims (nothing in it claims
    # to be older than the cutoff). Here the two differ: readings stored just now that claim a time 400
    # days back (a reset clock's record) and 2052.
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    before = time.time()
    for claimed in (before - 400 * DAY, before - 5 * DAY, 2_608_000_000.0):
        outbox.put(str(uuid7()), b"w", remember=("body_weight", claimed, b'{"claimed":%d}' % claimed))
    stored = time.time()
    # Today: nothing was stored 90 days ago, so nothing goes, not even what claims to be 400 days old.
    assert outbox.forget_stored_before(before - 90 * DAY) == 0
    assert len(outbox.recall("body_weight", since=0.0, until=3e9)) == 3
    # 90 days after they were stored (the cutoff passes the moment they were stored) all go, the one
    # claiming 2052 too: a wrong date cannot keep a record, or its trend, forever.
    assert outbox.forget_stored_before(stored + 1.0) == 3
    assert outbox.recall("body_weight", since=0.0, until=3e9) == []
    outbox.close()


# ---- issue 18.7: the repeated hour in October, through the pipeline -------------------------------------

def scale_pipeline(tmp_path: Path, clock: Clock) -> tuple[Pipeline, SealedOutbox]:
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    plan = standard_plan(load_profile("standard-heart-failure"), load_advice(), date(2026, 10, 1))
    scale = DeviceSection(address=SCALE, kind=MeasurementKind.BODY_WEIGHT)
    return Pipeline(patient="p-test", devices={SCALE: scale}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5), now=clock), outbox


async def _the_night_clocks_go_back(pipeline: Pipeline, clock: Clock) -> list[tuple[datetime, str]]:
    # The morning after, a right clock; the scale's memory: 02:50 in summer time, then (clocks back) 02:10
    # in standard time (true 00:50 and 01:10 UTC), sent oldest first.
    clock.now = datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    await take(pipeline, SCALE, uuids.CURRENT_TIME, encode_current_time(datetime(2026, 10, 25, 9, 0)))
    dated = []
    for kg, wall in (("80.0", datetime(2026, 10, 25, 2, 50)), ("80.2", datetime(2026, 10, 25, 2, 10))):
        reading = await take(pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, weighing(kg, wall))
        assert reading is not None
        dated.append((reading.effective, reading.time_source))
    return dated


async def test_stored_weighings_from_the_repeated_hour_are_never_passed_off_as_certain(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 10, 25, 8, 0, tzinfo=UTC))
    pipeline, outbox = scale_pipeline(tmp_path, clock)
    dated = await _the_night_clocks_go_back(pipeline, clock)
    # Before: both device_synced, 02:10 read as summer time (00:10 UTC, true 01:10).
    assert dated[0][1] == "device_unverified"  # 02:50: nothing can tell which pass it was
    assert all(source in ("device_unverified", "device_synced") for _, source in dated)
    assert dated[1] in ((datetime(2026, 10, 25, 0, 10, tzinfo=UTC), "device_unverified"),
                        (datetime(2026, 10, 25, 1, 10, tzinfo=UTC), "device_synced"))
    outbox.close()


async def test_stored_weighings_from_the_repeated_hour_keep_the_order_they_were_sent_in(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 10, 25, 8, 0, tzinfo=UTC))
    pipeline, outbox = scale_pipeline(tmp_path, clock)
    dated = await _the_night_clocks_go_back(pipeline, clock)
    assert dated == [(datetime(2026, 10, 25, 0, 50, tzinfo=UTC), "device_unverified"),
                     (datetime(2026, 10, 25, 1, 10, tzinfo=UTC), "device_synced")]
    outbox.close()
