"""Control measurement: when the patient is asked to measure again at once (docs/zoning.md).

A suspect reading keeps its zone (a red is never suppressed); it only asks for a repeat. The ranges
below are physiology and device limits, not treatment thresholds, so they are not part of a plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from statistics import median

from drivers.measurement import DeviceFlag, Measurement, MeasurementKind
from zoning.history import PastReading, usable

K = MeasurementKind

# Outside these a value is not a plausible human reading in a home (a device or handling error).
PLAUSIBLE: dict[tuple[MeasurementKind, str], tuple[Decimal, Decimal]] = {
    (K.SPO2, "spo2"): (Decimal(50), Decimal(100)),
    (K.SPO2, "pulse"): (Decimal(25), Decimal(250)),
    (K.BLOOD_PRESSURE, "systolic"): (Decimal(50), Decimal(280)),
    (K.BLOOD_PRESSURE, "diastolic"): (Decimal(20), Decimal(180)),
    (K.BLOOD_PRESSURE, "pulse"): (Decimal(25), Decimal(250)),
    (K.BODY_WEIGHT, "weight"): (Decimal(20), Decimal(350)),
    (K.BODY_TEMPERATURE, "temperature"): (Decimal(30), Decimal(43)),
    (K.GLUCOSE, "glucose"): (Decimal("1.0"), Decimal(35)),
}

# A change this large from the median of the patient's last 7 days asks for a repeat first.
JUMP: dict[tuple[MeasurementKind, str], Decimal] = {
    (K.SPO2, "spo2"): Decimal(6),
    (K.SPO2, "pulse"): Decimal(40),
    (K.BLOOD_PRESSURE, "systolic"): Decimal(40),
    (K.BLOOD_PRESSURE, "diastolic"): Decimal(30),
    (K.BLOOD_PRESSURE, "pulse"): Decimal(40),
    (K.BODY_WEIGHT, "weight"): Decimal(4),
    (K.BODY_TEMPERATURE, "temperature"): Decimal("2.0"),
}
JUMP_WINDOW = timedelta(days=7)
JUMP_MIN_READINGS = 3

# Flags that say the measurement itself is unreliable. Irregular pulse is a finding, not an error.
UNRELIABLE: frozenset[DeviceFlag] = frozenset({
    DeviceFlag.BODY_MOVEMENT, DeviceFlag.CUFF_TOO_LOOSE, DeviceFlag.IMPROPER_POSITION,
    DeviceFlag.QUESTIONABLE_MEASUREMENT, DeviceFlag.POOR_SIGNAL, DeviceFlag.LOW_PERFUSION, DeviceFlag.PROVISIONAL,
})

# A reading within this time after one that asked for a control, of the same kind, is that control.
REPEAT_WINDOW = timedelta(minutes=60)


def control_reasons(m: Measurement, effective: datetime, history: Sequence[PastReading]) -> tuple[str, ...]:
    """Why a repeat (control) measurement should be asked for; empty when none.

    One reason per finding: a flag the device set as unreliable, a value outside what is physiologically
    plausible, a jump against the 7-day median of the patient's own readings, or a diastolic not below
    the systolic.
    """
    reasons: list[str] = [f"device: {flag.value}" for flag in sorted(m.flags & UNRELIABLE)]
    for component, quantity in m.components.items():
        bounds = PLAUSIBLE.get((m.kind, component))
        if bounds and not bounds[0] <= quantity.value <= bounds[1]:
            reasons.append(f"implausible: {component} {quantity.value} outside {bounds[0]}-{bounds[1]}")
            continue
        jump = JUMP.get((m.kind, component))
        recent = [r.values[component] for r in usable(history, m.kind, component, effective)
                  if r.effective >= effective - JUMP_WINDOW]
        if jump is not None and len(recent) >= JUMP_MIN_READINGS:
            typical = Decimal(median(recent))
            if abs(quantity.value - typical) >= jump:
                reasons.append(f"jump: {component} {quantity.value} against a 7-day median of {typical}")
    pressures = m.components.get("systolic"), m.components.get("diastolic")
    if pressures[0] is not None and pressures[1] is not None and pressures[1].value >= pressures[0].value:
        reasons.append("implausible: diastolic not below systolic")
    return tuple(reasons)


def unreliable(m: Measurement) -> bool:
    """Whether the device flagged the measurement as unreliable (movement, a cuff too loose ...): it is never green."""
    return bool(m.flags & UNRELIABLE)


def control_asked_for(kind: MeasurementKind, effective: datetime, history: Sequence[PastReading]) -> PastReading | None:
    """The reading this one repeats.

    The latest earlier reading of the kind, if it asked for a control and is recent enough. Only the first
    reading after it counts as the repeat.
    """
    earlier = sorted((r for r in history if r.kind == kind and r.effective <= effective), key=lambda r: r.effective)
    if earlier and earlier[-1].control and effective - earlier[-1].effective <= REPEAT_WINDOW:
        return earlier[-1]
    return None
