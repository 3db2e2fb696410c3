"""Zoning benchmark: assessments per second for a patient with a 90-day history.

    .venv/bin/python bench/zoning.py [--per-day 4] [--runs 2000]

The history holds `per-day` readings a day for 90 days (SpO2, blood pressure, weight, temperature in
turn), as a COPD or heart-failure patient measuring more than the schedule asks would have. Prints
assessments/s of the full engine (thresholds, trends, consecutive rules, control checks, schedule),
against the baseline of threshold rules alone measured in the same run (the ratio is what trends,
control and schedule cost on top).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent.parent))

from drivers.measurement import Measurement, MeasurementKind, Quantity
from gateway.plans import load_advice, load_profile
from zoning import PastReading, Plan, assess_reading, remembered, standard_plan, thresholds

OSLO = ZoneInfo("Europe/Oslo")
Values = dict[str, tuple[int | Decimal, str]]


def _spo2(r: random.Random) -> Values:
    return {"spo2": (r.randint(90, 98), "%"), "pulse": (r.randint(60, 100), "/min")}


def _pressure(r: random.Random) -> Values:
    return {"systolic": (r.randint(100, 150), "mm[Hg]"), "diastolic": (r.randint(60, 95), "mm[Hg]"),
            "pulse": (r.randint(60, 100), "/min")}


def _weight(r: random.Random) -> Values:
    return {"weight": (Decimal(r.randint(790, 830)) / 10, "kg")}


def _temperature(r: random.Random) -> Values:
    return {"temperature": (Decimal(r.randint(360, 385)) / 10, "Cel")}


KINDS: list[tuple[MeasurementKind, Callable[[random.Random], Values]]] = [
    (MeasurementKind.SPO2, _spo2), (MeasurementKind.BLOOD_PRESSURE, _pressure),
    (MeasurementKind.BODY_WEIGHT, _weight), (MeasurementKind.BODY_TEMPERATURE, _temperature),
]


def reading(rng: random.Random, i: int) -> Measurement:
    kind, values = KINDS[i % len(KINDS)]
    components = {k: Quantity(value=Decimal(v), unit=u) for k, (v, u) in values(rng).items()}
    return Measurement(kind=kind, components=components)


def build_history(plan: Plan, per_day: int, start: datetime, rng: random.Random) -> list[PastReading]:
    history: list[PastReading] = []
    for i in range(90 * per_day):
        at = start + timedelta(hours=24 * i / per_day)
        m = reading(rng, i)
        a = assess_reading(m, reading_id=f"h{i}", effective=at, history=history, plan=plan, tz=OSLO)
        history.append(remembered(f"h{i}", m, at, a))
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(20261124)
    advice = load_advice()
    start = datetime(2026, 8, 1, 8, tzinfo=UTC)
    now = start + timedelta(days=90)
    print(f"history: {90 * args.per_day} readings over 90 days; {args.runs} assessments per figure")
    for name in ("standard-copd", "standard-heart-failure"):
        plan = standard_plan(load_profile(name), advice, date(2026, 8, 1))
        history = build_history(plan, args.per_day, start, rng)
        samples = [reading(rng, i) for i in range(args.runs)]

        t = time.perf_counter()
        for m in samples:
            thresholds(plan.rules, m.kind, {k: q.value for k, q in m.components.items()})
        base = args.runs / (time.perf_counter() - t)

        t = time.perf_counter()
        for i, m in enumerate(samples):
            assess_reading(m, reading_id=f"n{i}", effective=now, history=history, plan=plan, tz=OSLO)
        full = args.runs / (time.perf_counter() - t)
        print(f"{name:<24} full engine {full:8.0f} assessments/s ({1e3 / full:.2f} ms each); "
              f"thresholds alone {base:9.0f}/s; ratio {full / base:.3f}")


if __name__ == "__main__":
    main()
