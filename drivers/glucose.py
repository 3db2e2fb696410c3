"""Glucose Service: Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34).

Concentration arrives in kg/L or mol/L and becomes mmol/L here (1 mmol/L = 18.016 mg/dL; mg/dL =
kg/L x 100,000). A sensor status that says the result is not trustworthy is a rejection with the
meter's reason. "Result higher/lower than the device can process" (the meter's HI / LO) is not: it
is a measurement flagged `above_measuring_range` / `below_measuring_range` — the patient's glucose is
beyond what the meter can read, which the nurse must hear of at once. Its value is the number the
meter sent (its limit), or absent when the meter sent a special value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from drivers.fields import Fields
from drivers.ieee11073 import SpecialValue
from drivers.measurement import DecodeError, DeviceFlag, Measurement, MeasurementKind, Quantity

MMOL_PER_L = "mmol/L"
_MG_DL_PER_MMOL_L = Decimal("18.016")

_STATUS_REJECT = {
    1 << 1: "sensor malfunction", 1 << 2: "sample size insufficient", 1 << 3: "strip insertion error",
    1 << 4: "wrong strip type", 1 << 7: "temperature too high for a valid test",
    1 << 8: "temperature too low for a valid test", 1 << 9: "strip pulled too soon", 1 << 10: "general device fault",
}
_OUT_OF_RANGE = {
    1 << 5: (DeviceFlag.ABOVE_MEASURING_RANGE, "higher than the meter can measure (HI)"),
    1 << 6: (DeviceFlag.BELOW_MEASURING_RANGE, "lower than the meter can measure (LO)"),
}
_CONTROL_SOLUTION = 10  # sample type, and location 4: a test of the meter, not of the patient


def _mmol(value: Decimal, mol_per_l: bool) -> Decimal:
    mmol = value * 1000 if mol_per_l else value * 100_000 / _MG_DL_PER_MMOL_L
    return mmol.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class GlucoseRecord:
    """A measurement with its meter sequence number, which links it to its context and to the RACP."""

    sequence: int
    measurement: Measurement
    context_follows: bool


def decode_glucose(data: bytes) -> GlucoseRecord:
    """A Glucose Measurement (0x2A18) with its sequence number; the concentration in mmol/L.

    A meter's HI / LO is kept as the flag `ABOVE_MEASURING_RANGE` / `BELOW_MEASURING_RANGE`, with the
    value absent. Raises `DecodeError` for a control-solution test, a sensor fault that makes the value
    unusable, or a record without a concentration. The device time is None when the meter's clock is not set.
    """
    what = "glucose measurement"
    f = Fields(data, what)
    flags = f.uint(1, "flags")
    sequence = f.uint(2, "sequence number")
    base = f.date_time("base time")
    offset = f.sint(2, "time offset") if flags & 0x01 else 0
    if not flags & 0x02:
        raise DecodeError(f"{what} #{sequence}: carries no concentration")
    value: Decimal | None = None
    special: SpecialValue | None = None
    try:
        value = f.sfloat("concentration")
    except SpecialValue as exc:
        special = exc  # a meter may send HI / LO as +INF / -INF: the status below decides
    type_location = f.uint(1, "type and sample location")
    if type_location & 0x0F == _CONTROL_SOLUTION or type_location >> 4 == 4:
        raise DecodeError(f"{what} #{sequence}: a control-solution test of the meter, not a patient reading")
    found: set[DeviceFlag] = set()
    absent: dict[str, str] = {}
    if flags & 0x08:
        status = f.uint(2, "sensor status annunciation")
        for bit, reason in _STATUS_REJECT.items():
            if status & bit:
                raise DecodeError(f"{what} #{sequence}: not used: {reason}")
        for bit, (flag, reason) in _OUT_OF_RANGE.items():
            if status & bit:
                found.add(flag)
                if value is None:
                    absent["glucose"] = f"{reason}; the meter sent {special}"
        if status & 0x01:
            found.add(DeviceFlag.LOW_BATTERY)
        if status & (1 << 11):
            found.add(DeviceFlag.DEVICE_CLOCK_NOT_SET)
    if value is None and not absent:
        raise DecodeError(f"no glucose measured: {special}")
    device_time = None
    if base is not None and DeviceFlag.DEVICE_CLOCK_NOT_SET not in found and offset not in (0x7FFF, -0x8000):
        device_time = base + timedelta(minutes=offset)
    components = {} if value is None else {"glucose": Quantity(value=_mmol(value, bool(flags & 0x04)), unit=MMOL_PER_L)}
    m = Measurement(kind=MeasurementKind.GLUCOSE, components=components, device_time=device_time,
                    flags=frozenset(found), absent=absent)
    return GlucoseRecord(sequence=sequence, measurement=m, context_follows=bool(flags & 0x10))


def decode_glucose_measurement(data: bytes) -> Measurement:
    """The measurement of a Glucose Measurement (0x2A18), without its sequence number (see `decode_glucose`)."""
    return decode_glucose(data).measurement


MEALS = {1: "before meal", 2: "after meal", 3: "fasting", 4: "casual", 5: "bedtime"}


@dataclass(frozen=True)
class GlucoseContext:
    """The meal context of a glucose record (0x2A34): its sequence number and the meal, if the patient gave one."""

    sequence: int
    meal: str | None


def decode_context(data: bytes) -> GlucoseContext:
    """A Glucose Measurement Context (0x2A34): the meal kept, the rest skipped; `DecodeError` if cut off."""
    f = Fields(data, "glucose measurement context")
    flags = f.uint(1, "flags")
    sequence = f.uint(2, "sequence number")
    if flags & 0x80:
        f.uint(1, "extended flags")
    if flags & 0x01:
        f.uint(1, "carbohydrate id")
        f.uint(2, "carbohydrate")
    meal = MEALS.get(f.uint(1, "meal")) if flags & 0x02 else None
    return GlucoseContext(sequence=sequence, meal=meal)
