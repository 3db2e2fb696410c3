"""Due and overdue per measurement kind (issue 9.6): a daily thermometer reading must not hide 39 days
without an oximeter reading."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from drivers.measurement import MeasurementKind as K
from tests.zoning_support import OSLO
from zoning import PastReading, Zone, next_due, overdue

ENROLLED = date(2026, 9, 1)
TODAY = date(2026, 11, 24)


def reading(kind: K, day: date, zone: Zone = Zone.GREEN) -> PastReading:
    return PastReading(id=f"{kind}-{day}", kind=kind, values={"x": Decimal(1)},
                       effective=datetime(day.year, day.month, day.day, 9, tzinfo=OSLO).astimezone(UTC), zone=zone)


def test_a_copd_patient_without_oximeter_readings_for_39_days_is_overdue_for_the_oximeter() -> None:
    history = [reading(K.SPO2, TODAY - timedelta(days=39))]
    history += [reading(K.BODY_TEMPERATURE, TODAY - timedelta(days=d)) for d in range(39, 0, -1)]
    late = {o.kind: o for o in overdue(ENROLLED, history, (K.SPO2, K.BODY_TEMPERATURE), TODAY, OSLO)}
    assert set(late) == {K.SPO2}
    assert late[K.SPO2].days == 32 and late[K.SPO2].due.cadence == "weekly"  # due a week after, 32 days ago


def test_a_kind_never_measured_is_due_from_enrolment() -> None:
    history = [reading(K.BODY_TEMPERATURE, TODAY - timedelta(days=1))]
    late = overdue(ENROLLED, history, (K.SPO2, K.BODY_TEMPERATURE), TODAY, OSLO)
    assert [(o.kind, o.due.on) for o in late] == [(K.SPO2, ENROLLED)]


def test_while_not_green_every_kind_is_due_the_next_day_but_not_overdue_from_before() -> None:
    # Red oximeter yesterday: the cuff, last used four days ago on the weekly schedule, is due today
    # (daily while not green), not "overdue by three days".
    history = [reading(K.BLOOD_PRESSURE, TODAY - timedelta(days=4)),
               reading(K.SPO2, TODAY - timedelta(days=1), Zone.RED)]
    assert next_due(ENROLLED, history, OSLO, kind=K.BLOOD_PRESSURE).on == TODAY
    assert overdue(ENROLLED, history, (K.SPO2, K.BLOOD_PRESSURE), TODAY, OSLO) == []
    assert [o.kind for o in overdue(ENROLLED, history, (K.SPO2, K.BLOOD_PRESSURE), TODAY + timedelta(days=1), OSLO)] \
        == [K.SPO2, K.BLOOD_PRESSURE]


def test_during_start_up_each_kind_is_due_daily() -> None:
    start = TODAY - timedelta(days=5)
    history = [reading(K.SPO2, start + timedelta(days=d)) for d in range(5)] + [reading(K.BLOOD_PRESSURE, start)]
    late = overdue(start, history, (K.SPO2, K.BLOOD_PRESSURE), TODAY, OSLO)
    assert [(o.kind, o.days) for o in late] == [(K.BLOOD_PRESSURE, 4)]  # due the day after its only reading
