"""Values between two bands written in whole numbers (issue 9.4): they count in the alert band.

A converted value (kPa -> mmHg, °F -> °C) or a device with decimals lands between NEWS2's whole-number
bands; it must never fall to the milder zone (docs/zoning.md, "Comparing with a band")."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from drivers.blood_pressure import decode_blood_pressure
from drivers.measurement import MeasurementKind as K
from drivers.thermometer import decode_temperature
from gateway.plans import load_profile, shipped_profiles
from hardware_sims import encoding
from tests.zoning_support import assess, measurement_from
from zoning import ThresholdRule, Zone, band_step

NORMAL: dict[K, dict[str, int | str]] = {
    K.SPO2: {"spo2": 97, "pulse": 70}, K.BLOOD_PRESSURE: {"systolic": 125, "diastolic": 80, "pulse": 70},
    K.BODY_TEMPERATURE: {"temperature": "37.0"}}


@pytest.mark.parametrize(("profile", "kind", "values", "zone"), [
    ("standard-copd", K.SPO2, {"spo2": "91.4"}, Zone.RED),  # red band <= 91: 91.4 is not yet 92
    ("standard-copd", K.SPO2, {"spo2": "91.9"}, Zone.RED),
    ("standard-copd", K.SPO2, {"spo2": "92"}, Zone.YELLOW),
    ("standard-copd", K.SPO2, {"spo2": "95.5"}, Zone.YELLOW),
    ("standard-copd", K.SPO2, {"spo2": "96"}, Zone.GREEN),
    ("standard-copd-scale2", K.SPO2, {"spo2": "83.7"}, Zone.RED),
    ("standard-blood-pressure", K.BLOOD_PRESSURE, {"systolic": "90.8"}, Zone.RED),  # 12.1 kPa
    ("standard-blood-pressure", K.BLOOD_PRESSURE, {"systolic": "219.8"}, Zone.RED),  # 29.3 kPa
    ("standard-blood-pressure", K.BLOOD_PRESSURE, {"systolic": "110.5"}, Zone.YELLOW),
    ("standard-blood-pressure", K.BLOOD_PRESSURE, {"pulse": "130.2"}, Zone.RED),
    ("standard-copd", K.BODY_TEMPERATURE, {"temperature": "35.04"}, Zone.RED),  # <= 35.0 at 0.1 °C
    ("standard-copd", K.BODY_TEMPERATURE, {"temperature": "38.06"}, Zone.YELLOW),  # >= 38.1
])
def test_a_value_between_whole_number_bands_is_in_the_alert_band(
    profile: str, kind: K, values: dict[str, str], zone: Zone
) -> None:
    assert assess(measurement_from(kind, {**NORMAL[kind], **values}), load_profile(profile)).zone == zone


def _gap_points(rule: ThresholdRule) -> list[tuple[Decimal, bool]]:
    """Fractional values on both sides of the bound, and whether the rule must fire there: everything
    short of the next whole step beyond the bound belongs to the rule's (alert) side."""
    step = band_step(rule.kind, rule.component, rule.limit)
    quarter, half = step / 4, step / 2
    low = rule.op in ("<", "<=")
    edge = rule.limit + step if rule.op == "<=" else rule.limit - step if rule.op == ">=" else rule.limit
    # `edge` is where the milder band starts.
    if low:
        return [(edge - quarter, True), (edge - half, True), (edge, False), (edge + quarter, False)]
    return [(edge + quarter, True), (edge + half, True), (edge, False), (edge - quarter, False)]


MMHG_PER_KPA = Decimal("7.50062")
HALF_STEP_MMHG = Decimal("0.375")  # 0.05 kPa
ALL_RULES = [(name, rule) for name in shipped_profiles() for rule in load_profile(name).rules]


@pytest.mark.parametrize(("profile", "rule"), ALL_RULES, ids=[f"{p}:{r.id}" for p, r in ALL_RULES])
def test_every_shipped_rule_at_fractional_values(profile: str, rule: ThresholdRule) -> None:
    for value, fires in _gap_points(rule):
        a = assess(measurement_from(rule.kind, {**NORMAL[rule.kind], rule.component: value}), load_profile(profile))
        assert (rule.id in {f.rule for f in a.fired}) is fires, f"{rule.id} at {value}"


BP_RULES = [(name, rule) for name, rule in ALL_RULES
            if rule.kind == K.BLOOD_PRESSURE and rule.component in ("systolic", "diastolic")]


def _kpa_cuff(component: str, kpa: Decimal) -> bytes:
    """What a cuff set to kPa sends: systolic, diastolic, mean in 0.1 kPa (the other two at normal values)."""
    values = {"systolic": Decimal("16.7"), "diastolic": Decimal("10.7"), "mean": Decimal("12.7"), component: kpa}
    if component == "systolic" and kpa < values["diastolic"]:
        values["diastolic"] = kpa - Decimal("2.0")  # keep the reading plausible: diastolic below systolic
    return (bytes([0x01]) + encoding.sfloat(values["systolic"], -1) + encoding.sfloat(values["diastolic"], -1)
            + encoding.sfloat(values["mean"], -1))


@pytest.mark.parametrize(("profile", "rule"), BP_RULES, ids=[f"{p}:{r.id}" for p, r in BP_RULES])
def test_every_blood_pressure_rule_at_converted_kpa_values(profile: str, rule: ThresholdRule) -> None:
    """Every 0.1 kPa step near the bound, through the real decoder. A 0.1 kPa reading stands for a true
    pressure within +-0.05 kPa (0.375 mmHg): whenever a whole-mmHg cuff measuring that pressure could
    show a value in the rule's band, the rule fires; and it never fires a whole mmHg beyond the band."""
    near = (rule.limit / MMHG_PER_KPA).quantize(Decimal("0.1"))
    for tenths in range(-4, 5):
        m = decode_blood_pressure(_kpa_cuff(rule.component, near + Decimal(tenths) / 10))
        value = m.components[rule.component].value
        fired = rule.id in {f.rule for f in assess(m, load_profile(profile)).fired}
        lowest = (value - HALF_STEP_MMHG).to_integral_value(ROUND_HALF_UP)
        highest = (value + HALF_STEP_MMHG).to_integral_value(ROUND_HALF_UP)
        could_show = {"<": lowest < rule.limit, "<=": lowest <= rule.limit,
                      ">": highest > rule.limit, ">=": highest >= rule.limit}[rule.op]
        beyond = {"<": value >= rule.limit, "<=": value >= rule.limit + 1,
                  ">": value <= rule.limit, ">=": value <= rule.limit - 1}[rule.op]
        if could_show:
            assert fired, f"{rule.id}: {value} mmHg could read as in the band on an mmHg cuff"
        if beyond:
            assert not fired, f"{rule.id}: {value} mmHg fired though a whole mmHg outside the band"


@pytest.mark.parametrize(("fahrenheit_tenths", "zone"), [
    (950, Zone.RED),  # 95.0 °F = 35.0 °C
    (951, Zone.RED),  # 35.06 °C: short of NEWS2's 35.1
    (952, Zone.YELLOW),  # 35.11 °C
    (1005, Zone.YELLOW),  # 38.06 °C: into the >= 38.1 band's gap
    (1004, Zone.GREEN),  # 38.0 °C
])
def test_a_fahrenheit_thermometer_lands_in_the_alert_band_after_conversion(fahrenheit_tenths: int, zone: Zone) -> None:
    data = bytes([0x01]) + encoding.float32(Decimal(fahrenheit_tenths) / 10, -1)
    m = decode_temperature(data)
    assert assess(m, load_profile("standard-copd")).zone == zone, m.components["temperature"].value
