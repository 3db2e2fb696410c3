"""What zoning knows of earlier readings: values, time and zone, nothing else about the patient."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from drivers.measurement import MeasurementKind
from zoning.models import Zone
from zoning.questionnaire import Form

# What judging one reading needs of its kind's history, so a caller can read just that (issue 10.5):
# every reading of the kind in the LOOKBACK before it (trend windows are at most 31 local days, the
# jump median 7 days), and at least the AT_LEAST latest of the kind whatever their age (a consecutive
# run of up to 14, the control repeat, the last known value across a gap in the data).
LOOKBACK = timedelta(days=33)  # 31 local days before the reading's own day, and a time-zone margin
AT_LEAST = 14


class PastReading(BaseModel):
    """What zoning keeps of an earlier reading: kind, values, corrected time, zone; nothing about the patient."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: MeasurementKind | Form  # Form.QUESTIONNAIRE: a questionnaire, no values, its zone
    values: dict[str, Decimal]
    effective: AwareDatetime
    zone: Zone
    control: bool = False  # a repeat measurement was asked for
    # Unassessed only because no rule had an earlier reading to compare with (a first weighing): the
    # value itself is sound and is the reference for the next one.
    unjudged: bool = False


def local_date(when: datetime, tz: ZoneInfo) -> date:
    """The calendar date of `when` in the patient's time zone `tz` (how rule windows count days)."""
    return when.astimezone(tz).date()


def usable(
    history: Sequence[PastReading], kind: MeasurementKind, component: str, before: datetime
) -> list[PastReading]:
    """Readings of `kind` carrying `component` up to `before`, oldest first.

    Unassessed ones (device-flagged as unreliable, or of a kind the plan does not judge) are no data: they
    never serve as a reference; a reading that was unassessed only for want of an earlier one does.
    """
    return sorted(
        (r for r in history
         if r.kind == kind and component in r.values and r.effective <= before
         and (r.zone != Zone.UNASSESSED or r.unjudged)),
        key=lambda r: r.effective,
    )
