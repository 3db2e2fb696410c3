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


def local_date(when: datetime, tz: ZoneInfo) -> date:
    return when.astimezone(tz).date()


def usable(
    history: Sequence[PastReading], kind: MeasurementKind, component: str, before: datetime
) -> list[PastReading]:
    """Readings of `kind` carrying `component` up to `before`, oldest first. Unassessed ones (device-flagged
    as unreliable, or not judged) are no data: they never serve as a reference."""
    return sorted(
        (r for r in history
         if r.kind == kind and component in r.values and r.effective <= before and r.zone != Zone.UNASSESSED),
        key=lambda r: r.effective,
    )
