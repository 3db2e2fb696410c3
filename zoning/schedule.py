"""The measurement schedule (service-model.md).

Daily for the first 14 days after enrolment, weekly afterwards, and daily again while the latest zone is
yellow or red, until green. Due dates are kept per measurement kind the plan schedules. Pure: dates in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from drivers.measurement import MeasurementKind
from zoning.history import PastReading, local_date
from zoning.models import SEVERITY, Zone
from zoning.questionnaire import Form

STARTUP_DAYS = 14
WEEK = timedelta(days=7)
DAY = timedelta(days=1)


class Due(BaseModel):
    """When the next measurement is due (a local date), at which cadence, and why."""

    model_config = ConfigDict(frozen=True)

    on: date
    cadence: Literal["daily", "weekly"]
    reason: Literal["start-up period", "latest zone not green", "stable"]


def latest_zone(history: Sequence[PastReading], tz: ZoneInfo) -> tuple[date, Zone] | None:
    """The worst zone of the most recent measurement day.

    A green cuff reading taken after a red oximeter reading that same morning does not make the day green.
    """
    if not history:
        return None
    last_day = max(local_date(r.effective, tz) for r in history)
    zones = [r.zone for r in history if local_date(r.effective, tz) == last_day]
    return last_day, max(zones, key=SEVERITY.__getitem__)


def next_due(
    enrolled: date, history: Sequence[PastReading], tz: ZoneInfo, kind: MeasurementKind | Form | None = None,
) -> Due:
    """When the next measurement is due.

    Of `kind` when given (each kind the patient measures has its own date, so a daily thermometer cannot hide
    a month without the oximeter; the questionnaire is due on its own too), else of any measurement kind.

    The cadence is the patient's: daily in the start-up period and while the latest day (any kind, the
    questionnaire included: a red form means measuring daily) is not green, weekly otherwise.
    """
    latest = latest_zone(history, tz)
    own = [r for r in history if r.kind == kind or (kind is None and r.kind != Form.QUESTIONNAIRE)]
    last_day = max((local_date(r.effective, tz) for r in own), default=None)
    if last_day is None or last_day < enrolled:
        return Due(on=enrolled, cadence="daily", reason="start-up period")
    tomorrow = last_day + DAY
    if tomorrow < enrolled + timedelta(days=STARTUP_DAYS):
        return Due(on=tomorrow, cadence="daily", reason="start-up period")
    assert latest is not None
    weekly = max(last_day + WEEK, enrolled + timedelta(days=STARTUP_DAYS))
    if latest[1] in (Zone.YELLOW, Zone.RED, Zone.UNASSESSED):
        # Unassessed (a device-flagged reading) is not green either: measure again tomorrow at the latest.
        # A kind last measured before the patient turned yellow is due the day after that turn, not
        # retroactively (its weekly date stands if that is earlier).
        return Due(on=min(weekly, max(tomorrow, latest[0] + DAY)), cadence="daily", reason="latest zone not green")
    return Due(on=weekly, cadence="weekly", reason="stable")


class Overdue(NamedTuple):
    """A kind whose measurement is past due: when it was due, and by how many days."""

    kind: MeasurementKind
    due: Due
    days: int


def overdue(
    enrolled: date, history: Sequence[PastReading], kinds: Iterable[MeasurementKind], today: date, tz: ZoneInfo,
) -> list[Overdue]:
    """The kinds in the patient's schedule whose measurement is past due today, in the order given."""
    found = []
    for kind in kinds:
        due = next_due(enrolled, history, tz, kind=kind)
        late = days_overdue(due, today)
        if late:
            found.append(Overdue(kind, due, late))
    return found


def days_overdue(due: Due, today: date) -> int:
    """0 when not overdue; the gateway turns a positive number into an `overdue` event."""
    return max(0, (today - due.on).days)
