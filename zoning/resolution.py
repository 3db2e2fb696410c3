"""Comparing a value with a band written in whole numbers (docs/zoning.md, "Comparing with a band").

The sources write their bands at a resolution: NEWS2 in whole % SpO2, whole mmHg and beats per minute,
temperature in 0.1 °C. A device with decimals, or a value converted from another unit (12.1 kPa ->
90.8 mmHg, 100.5 °F -> 38.06 °C), can land between two bands: above "<= 91" and below "92-93". Such a
value cannot be placed in either band with certainty, so it counts in the band of the rule that
reaches toward it: the alert side. A nurse sees one more yellow rather than missing a red.

In numbers: before comparing, the value is rounded toward the rule's alert side at the band's step:
down for a low rule (`<`, `<=`: 91.4 -> 91, red at <= 91), up for a high rule (`>`, `>=`: 219.8 ->
220, red at >= 220). A whole-number value is unchanged, so every reading from a device that shows
whole numbers is judged exactly as before.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Literal

from drivers.measurement import MeasurementKind

K = MeasurementKind
Comparison = Literal["<", "<=", ">", ">="]

# The step the clinical sources write each component's bands in.
BAND_STEP: dict[tuple[MeasurementKind, str], Decimal] = {
    (K.SPO2, "spo2"): Decimal(1),
    (K.SPO2, "pulse"): Decimal(1),
    (K.BLOOD_PRESSURE, "systolic"): Decimal(1),
    (K.BLOOD_PRESSURE, "diastolic"): Decimal(1),
    (K.BLOOD_PRESSURE, "mean"): Decimal(1),
    (K.BLOOD_PRESSURE, "pulse"): Decimal(1),
    (K.BODY_TEMPERATURE, "temperature"): Decimal("0.1"),
    (K.BODY_WEIGHT, "weight"): Decimal("0.1"),
    (K.GLUCOSE, "glucose"): Decimal("0.1"),
}
_EXACT = Decimal("0.001")  # a component without a clinical band resolution: compared (almost) exactly


@lru_cache(maxsize=1024)  # a handful of rules, judged on every reading
def band_step(kind: MeasurementKind, component: str, limit: Decimal) -> Decimal:
    """The step a value of the component is compared at against `limit`.

    The component's band step, or the limit's own finer step when a doctor wrote a finer limit (35.05 °C is
    compared at 0.01 °C, not as if it said 35.0).
    """
    step = BAND_STEP.get((kind, component), _EXACT)
    if limit % step == 0:
        return step
    return Decimal(1).scaleb(limit.normalize().as_tuple().exponent)  # type: ignore[arg-type]


def toward_alert(value: Decimal, op: Comparison, step: Decimal) -> Decimal:
    """`value` rounded at `step` toward the side where the rule `op` fires."""
    return value.quantize(step, rounding=ROUND_FLOOR if op in ("<", "<=") else ROUND_CEILING)


def in_band(value: Decimal, op: Comparison, limit: Decimal, step: Decimal) -> bool:
    """Whether `value op limit` holds once the value is placed at the band's resolution."""
    v = toward_alert(value, op, step)
    match op:
        case "<":
            return v < limit
        case "<=":
            return v <= limit
        case ">":
            return v > limit
        case ">=":
            return v >= limit
