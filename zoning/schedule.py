"""The measurement schedule (service-model.md): daily for the first 14 days after enrolment, weekly
afterwards, and daily again while the latest zone is yellow or red, until green. Pure: dates in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from zoning.history import PastReading, local_date
from zoning.models import SEVERITY, Zone

STARTUP_DAYS = 14
WEEK = timedelta(days=7)
DAY = timedelta(days=1)


class Due(BaseModel):
    model_config = ConfigDict(frozen=True)

    on: date
    cadence: Literal["daily", "weekly"]
    reason: Literal["start-up period", "latest zone not green", "stable"]


def latest_zone(history: Sequence[PastReading], tz: ZoneInfo) -> tuple[date, Zone] | None:
    """The worst zone of the most recent measurement day: a green cuff reading taken after a red
    oximeter reading that same morning does not make the day green."""
    if not history:
        return None
    last_day = max(local_date(r.effective, tz) for r in history)
    zones = [r.zone for r in history if local_date(r.effective, tz) == last_day]
    return last_day, max(zones, key=SEVERITY.__getitem__)


def next_due(enrolled: date, history: Sequence[PastReading], tz: ZoneInfo) -> Due:
    latest = latest_zone(history, tz)
    last_day = latest[0] if latest else None
    if last_day is None or last_day < enrolled:
        return Due(on=enrolled, cadence="daily", reason="start-up period")
    tomorrow = last_day + DAY
    if tomorrow < enrolled + timedelta(days=STARTUP_DAYS):
        return Due(on=tomorrow, cadence="daily", reason="start-up period")
    assert latest is not None
    if latest[1] in (Zone.YELLOW, Zone.RED, Zone.UNASSESSED):
        # Unassessed (a device-flagged reading) is not green either: measure again tomorrow at the latest.
        return Due(on=tomorrow, cadence="daily", reason="latest zone not green")
    return Due(on=max(last_day + WEEK, enrolled + timedelta(days=STARTUP_DAYS)), cadence="weekly", reason="stable")


def days_overdue(due: Due, today: date) -> int:
    """0 when not overdue; the gateway turns a positive number into an `overdue` event."""
    return max(0, (today - due.on).days)
