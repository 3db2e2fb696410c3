"""Helpers for zoning tests: plans from shipped profiles, measurements, and history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from drivers.measurement import DeviceFlag, Measurement, MeasurementKind, Quantity
from gateway.plans import load_advice, load_profile
from zoning import Assessment, PastReading, Plan, Profile, assess_reading, remembered, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
ADVICE = load_advice()
UNITS = {"pulse": "/min", "spo2": "%", "weight": "kg", "temperature": "Cel", "glucose": "mmol/L"}
T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def plan(profile: str | Profile, enrolled: date = date(2026, 1, 1)) -> Plan:
    return standard_plan(load_profile(profile) if isinstance(profile, str) else profile, ADVICE, enrolled)


def measurement(
    kind: MeasurementKind, *, flags: Sequence[DeviceFlag] = (), **values: float | int | str | Decimal
) -> Measurement:
    return measurement_from(kind, values, flags)


def measurement_from(
    kind: MeasurementKind, values: Mapping[str, float | int | str | Decimal], flags: Sequence[DeviceFlag] = ()
) -> Measurement:
    return Measurement(
        kind=kind,
        components={k: Quantity(value=Decimal(str(v)), unit=UNITS.get(k, "mm[Hg]")) for k, v in values.items()},
        flags=frozenset(flags),
    )


def assess(m: Measurement, profile: Profile | Plan, history: Sequence[PastReading] = (),
           at: datetime = T0) -> Assessment:
    p = profile if isinstance(profile, Plan) else plan(profile)
    return assess_reading(m, reading_id=f"r-{at.timestamp():.0f}", effective=at, history=history, plan=p, tz=OSLO)


class Patient:
    """A patient measuring over time: each reading is assessed against everything measured before."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.history: list[PastReading] = []

    def measure(self, m: Measurement, at: datetime) -> Assessment:
        reading_id = f"r{len(self.history)}"
        a = assess_reading(m, reading_id=reading_id, effective=at, history=self.history, plan=self.plan, tz=OSLO)
        self.history.append(remembered(reading_id, m, at, a))
        return a
