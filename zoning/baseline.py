"""Baseline proposal: individual thresholds from the first 14 days, for the clinician to consider.

Only a proposal. The gateway never applies it: the doctor orders thresholds, a second person verifies
them, and they arrive as a signed plan (docs/zoning.md, "Baseline proposal").

Method, per parameter below: the patient's median over the last 14 local days (at least 10 days with
a usable reading), and the interquartile range as the spread shown beside it. Yellow and red bounds
are set at fixed clinical offsets from the median (shared/reference/thresholds.md) and then clamped
so that the red bound is never more permissive than the red bound of the standard profile the
patient is on, and yellow is never more permissive than red.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import median, quantiles
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from drivers.measurement import MeasurementKind
from zoning.history import PastReading, local_date
from zoning.models import Profile, Zone
from zoning.resolution import band_step

BASELINE_DAYS = 14
MIN_DAYS = 10


@dataclass(frozen=True)
class Method:
    """How one component's baseline bounds are derived: offsets from the median on its dangerous side, and why."""

    kind: MeasurementKind
    component: str
    direction: Literal["low", "high"]  # which side of the median is dangerous
    yellow_offset: Decimal
    red_offset: Decimal
    source: str


METHODS: tuple[Method, ...] = (
    Method(MeasurementKind.SPO2, "spo2", "low", Decimal(3), Decimal(5),
           "thresholds.md: SpO2 3 and 5 points below the baseline median; BTS 2017: a fall of 3 points"),
    Method(MeasurementKind.SPO2, "pulse", "high", Decimal(20), Decimal(30),
           "thresholds.md: resting pulse 20 and 30 above the baseline median"),
    Method(MeasurementKind.BLOOD_PRESSURE, "pulse", "high", Decimal(20), Decimal(30),
           "thresholds.md: resting pulse 20 and 30 above the baseline median"),
)


class ProposedBound(BaseModel):
    """One proposed bound: `op limit` puts a reading in `zone`; `clamped` when the standard red bound capped it."""

    model_config = ConfigDict(frozen=True)

    kind: MeasurementKind
    component: str
    zone: Zone
    op: Literal["<=", ">="]
    limit: Decimal
    standard_limit: Decimal | None  # the standard profile's bound for the same zone, for comparison
    clamped: bool  # the offset would have been more permissive than the standard red bound


class ComponentBaseline(BaseModel):
    """One component's baseline over the period: days and readings used, median, quartiles, proposed bounds."""

    model_config = ConfigDict(frozen=True)

    kind: MeasurementKind
    component: str
    days: int
    readings: int
    median: Decimal
    iqr: tuple[Decimal, Decimal] | None
    proposal: tuple[ProposedBound, ...]
    method: str


class BaselineProposal(BaseModel):
    """The baseline for the clinician to review: `period` (local dates, inclusive), each component, what lacked data."""

    model_config = ConfigDict(frozen=True)

    period: tuple[date, date]
    components: tuple[ComponentBaseline, ...]
    insufficient: tuple[str, ...]  # parameters without enough days, with why


def _standard(profile: Profile, m: Method, zone: Zone) -> Decimal | None:
    ops = ("<", "<=") if m.direction == "low" else (">", ">=")
    limits = [r.limit for r in profile.rules
              if r.kind == m.kind and r.component == m.component and r.zone == zone and r.op in ops]
    if not limits:
        return None
    return max(limits) if m.direction == "low" else min(limits)


def _bounds(m: Method, centre: Decimal, profile: Profile) -> tuple[ProposedBound, ...]:
    low = m.direction == "low"
    sign = -1 if low else 1
    red = centre + sign * m.red_offset
    yellow = centre + sign * m.yellow_offset
    standard_red = _standard(profile, m, Zone.RED)
    clamped = False
    # More permissive = further from the median than the standard red bound.
    if standard_red is not None and (red < standard_red if low else red > standard_red):
        red, clamped = standard_red, True
    # Yellow at least one band step inside red: a plan drafted from the proposal must have its bands in
    # order (red beyond yellow), or the box refuses it.
    step = band_step(m.kind, m.component, red)
    yellow = max(yellow, red + step) if low else min(yellow, red - step)
    op: Literal["<=", ">="] = "<=" if low else ">="
    return (
        ProposedBound(kind=m.kind, component=m.component, zone=Zone.YELLOW, op=op, limit=yellow,
                      standard_limit=_standard(profile, m, Zone.YELLOW), clamped=False),
        ProposedBound(kind=m.kind, component=m.component, zone=Zone.RED, op=op, limit=red,
                      standard_limit=standard_red, clamped=clamped),
    )


def propose_baseline(history: Sequence[PastReading], profile: Profile, today: date, tz: ZoneInfo) -> BaselineProposal:
    """The baseline of the `BASELINE_DAYS` local days ending `today`, from the readings in `history`.

    A component with readings on fewer than `MIN_DAYS` days is listed in `insufficient` instead;
    unassessed readings are not used. Proposed bounds are never more permissive than the standard red
    bound of `profile`. Pure: the box never applies it (a clinician turns it into a signed plan).
    """
    first = today - timedelta(days=BASELINE_DAYS - 1)
    found, insufficient = [], []
    for m in METHODS:
        values: list[Decimal] = []
        days: set[date] = set()
        for r in history:
            day = local_date(r.effective, tz)
            if r.kind == m.kind and m.component in r.values and first <= day <= today and r.zone != Zone.UNASSESSED:
                values.append(r.values[m.component])
                days.add(day)
        if len(days) < MIN_DAYS:
            insufficient.append(f"{m.kind}.{m.component}: readings on {len(days)} of the {MIN_DAYS} days needed")
            continue
        centre = Decimal(median(values))
        q = quantiles(values, n=4) if len(values) >= 2 else None
        found.append(ComponentBaseline(
            kind=m.kind, component=m.component, days=len(days), readings=len(values), median=centre,
            iqr=(Decimal(q[0]), Decimal(q[2])) if q else None, proposal=_bounds(m, centre, profile), method=m.source,
        ))
    return BaselineProposal(period=(first, today), components=tuple(found), insufficient=tuple(insufficient))
