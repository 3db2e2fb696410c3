"""What zoning knows of earlier readings: values, time and zone, nothing else about the patient."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from drivers.measurement import MeasurementKind
from zoning.models import Zone


class PastReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: MeasurementKind
    values: dict[str, Decimal]
    effective: AwareDatetime
    zone: Zone
    control: bool = False  # a repeat measurement was asked for
    # Unassessed only because no rule had an earlier reading to compare with (a first weighing): the
    # value itself is sound and is the reference for the next one.
    unjudged: bool = False


def local_date(when: datetime, tz: ZoneInfo) -> date:
    return when.astimezone(tz).date()


def usable(
    history: Sequence[PastReading], kind: MeasurementKind, component: str, before: datetime
) -> list[PastReading]:
    """Readings of `kind` carrying `component` up to `before`, oldest first. Unassessed ones (device-flagged
    as unreliable, or of a kind the plan does not judge) are no data: they never serve as a reference; a
    reading that was unassessed only for want of an earlier one does."""
    return sorted(
        (r for r in history
         if r.kind == kind and component in r.values and r.effective <= before
         and (r.zone != Zone.UNASSESSED or r.unjudged)),
        key=lambda r: r.effective,
    )
