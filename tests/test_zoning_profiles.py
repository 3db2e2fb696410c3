"""The shipped COPD and heart-failure profiles at every bound, with the zones their sources call for."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from drivers.measurement import MeasurementKind as K
from gateway.plans import load_profile, shipped_profiles
from tests.zoning_support import OSLO, T0, Patient, assess, measurement, measurement_from, plan
from zoning import Answers, ThresholdRule, Zone, assess_answers, band_step, symptoms


def _points(rule: ThresholdRule) -> list[tuple[Decimal, bool]]:
    """One band step (1 % SpO2, 1 mmHg, 0.1 °C) below, at and above the limit, and whether the rule must
    fire there by its operator. Values between steps: tests/test_zoning_resolution.py."""
    step = band_step(rule.kind, rule.component, rule.limit)
    below, at, above = rule.limit - step, rule.limit, rule.limit + step
    return {
        "<": [(below, True), (at, False), (above, False)],
        "<=": [(below, True), (at, True), (above, False)],
        ">": [(below, False), (at, False), (above, True)],
        ">=": [(below, False), (at, True), (above, True)],
    }[rule.op]


ALL_RULES = [(name, rule) for name in shipped_profiles() for rule in load_profile(name).rules]


@pytest.mark.parametrize(("profile", "rule"), ALL_RULES, ids=[f"{p}:{r.id}" for p, r in ALL_RULES])
def test_every_threshold_rule_fires_exactly_by_its_bound(profile: str, rule: ThresholdRule) -> None:
    for value, fires in _points(rule):
        a = assess(measurement_from(rule.kind, {rule.component: value}), load_profile(profile))
        assert (rule.id in {f.rule for f in a.fired}) is fires, f"{rule.id} at {value}"
        if fires:
            assert a.zone in (rule.zone, Zone.RED)  # this rule's zone, or worse from another rule


# Clinical expectations written from the sources (thresholds.md), not from the profile files.
CLINICAL: list[tuple[str, K, str, list[tuple[int | str, Zone]]]] = [
    ("standard-copd", K.SPO2, "spo2", [(90, Zone.RED), (91, Zone.RED), (92, Zone.YELLOW), (93, Zone.YELLOW),
                                       (95, Zone.YELLOW), (96, Zone.GREEN), (100, Zone.GREEN)]),
    ("standard-copd-scale2", K.SPO2, "spo2", [(83, Zone.RED), (84, Zone.YELLOW), (87, Zone.YELLOW),
                                              (88, Zone.GREEN), (89, Zone.GREEN), (92, Zone.GREEN)]),
    ("standard-copd", K.SPO2, "pulse", [(40, Zone.RED), (41, Zone.YELLOW), (50, Zone.YELLOW), (51, Zone.GREEN),
                                        (90, Zone.GREEN), (91, Zone.YELLOW), (130, Zone.YELLOW), (131, Zone.RED)]),
    ("standard-copd", K.BODY_TEMPERATURE, "temperature", [
        ("35.0", Zone.RED), ("35.1", Zone.YELLOW), ("36.0", Zone.YELLOW), ("36.1", Zone.GREEN),
        ("38.0", Zone.GREEN), ("38.1", Zone.YELLOW), ("39.5", Zone.YELLOW)]),
    ("standard-heart-failure", K.BLOOD_PRESSURE, "systolic", [
        (90, Zone.RED), (91, Zone.YELLOW), ("99.9", Zone.YELLOW), (100, Zone.GREEN), (160, Zone.GREEN),
        (161, Zone.YELLOW), (219, Zone.YELLOW), (220, Zone.RED)]),
    ("standard-heart-failure", K.BLOOD_PRESSURE, "pulse", [
        (40, Zone.RED), (49, Zone.YELLOW), (50, Zone.GREEN), (100, Zone.GREEN), (101, Zone.YELLOW),
        (130, Zone.YELLOW), (131, Zone.RED)]),
]
NORMAL: dict[K, dict[str, int | str]] = {
    K.SPO2: {"spo2": 97, "pulse": 70}, K.BLOOD_PRESSURE: {"systolic": 125, "diastolic": 80, "pulse": 70},
          K.BODY_TEMPERATURE: {"temperature": "37.0"}}
CASES = [(p, k, c, v, z) for p, k, c, points in CLINICAL for v, z in points]


@pytest.mark.parametrize(("profile", "kind", "component", "value", "zone"), CASES)
def test_clinical_bounds(profile: str, kind: K, component: str, value: int | str, zone: Zone) -> None:
    m = measurement_from(kind, {**NORMAL[kind], component: value})
    assert assess(m, load_profile(profile)).zone == zone


@pytest.mark.parametrize(("gain", "zone"), [
    ("1.0", Zone.GREEN), ("1.1", Zone.YELLOW), ("2.0", Zone.YELLOW), ("2.1", Zone.RED)])
def test_heart_failure_weight_gain_in_three_days(gain: str, zone: Zone) -> None:
    patient = Patient(plan("standard-heart-failure"))
    patient.measure(measurement(K.BODY_WEIGHT, weight="80.0"), T0 - timedelta(days=3))
    patient.measure(measurement(K.BODY_WEIGHT, weight="80.4"), T0 - timedelta(days=1))
    a = patient.measure(measurement(K.BODY_WEIGHT, weight=Decimal("80.0") + Decimal(gain)), T0)
    assert a.zone == zone
    if zone == Zone.RED:  # ESC: more than 2 kg in 3 days -> take the diuretic as the plan says
        assert a.advice_keys == ("body_weight.red", "body_weight.gain", "emergency")
        assert a.fired[-1].value == Decimal(gain) and a.fired[-1].limit == 2


@pytest.mark.parametrize(("fall", "zone"), [(2, Zone.GREEN), (3, Zone.YELLOW), (4, Zone.YELLOW)])
def test_copd_saturation_fall_of_three_points(fall: int, zone: Zone) -> None:
    patient = Patient(plan("standard-copd-scale2"))  # 88-92 % target: absolute bands stay green here
    patient.measure(measurement(K.SPO2, spo2=92, pulse=70), T0 - timedelta(days=2))
    assert patient.measure(measurement(K.SPO2, spo2=92 - fall, pulse=70), T0).zone == zone


def test_copd_three_low_saturations_in_a_row_turn_red() -> None:
    patient = Patient(plan("standard-copd"))
    zones = [patient.measure(measurement(K.SPO2, spo2=93, pulse=70), T0 + timedelta(days=d)).zone for d in range(3)]
    assert zones == [Zone.YELLOW, Zone.YELLOW, Zone.RED]
    assert patient.measure(measurement(K.SPO2, spo2=97, pulse=70), T0 + timedelta(days=3)).zone == Zone.GREEN
    # One good reading breaks the run: two more lows are yellow again, not red.
    assert patient.measure(measurement(K.SPO2, spo2=93, pulse=70), T0 + timedelta(days=4)).zone == Zone.YELLOW


def _answers(**given: str) -> Answers:
    return Answers(answered=T0, answers=given)


USUAL = {"breathlessness": "usual", "cough": "usual", "sputum_amount": "usual", "sputum_colour": "white",
         "temperature_feeling": "normal"}


@pytest.mark.parametrize(("given", "zone"), [
    (USUAL, Zone.GREEN),
    ({**USUAL, "cough": "worse"}, Zone.YELLOW),
    ({**USUAL, "cough": "much_worse"}, Zone.YELLOW),  # issue 18.6: it was green
    ({"breathlessness": "usual"}, Zone.UNASSESSED),  # issue 18.6: one answer was enough for green
    ({"breathlessness": "worse"}, Zone.YELLOW),
    ({"sputum_colour": "yellow_green"}, Zone.YELLOW),
    ({"temperature_feeling": "feverish"}, Zone.YELLOW),
    ({"breathlessness": "worse", "sputum_amount": "more"}, Zone.RED),
    ({"sputum_amount": "much_more", "sputum_colour": "brown_red"}, Zone.RED),
    ({"breathlessness": "much_worse"}, Zone.RED),
])
def test_copd_questionnaire(given: dict[str, str], zone: Zone) -> None:
    p = plan("standard-copd")
    a = assess_answers(_answers(**given), history=[], plan=p, tz=OSLO)
    assert a.zone == zone
    assert a.advice_keys[0] == f"symptoms.{zone}"
    assert ("emergency" in a.advice_keys) is (zone == Zone.RED)


def test_two_cardinal_symptoms_report_how_many_were_met() -> None:
    fired = symptoms(plan("standard-copd").rules, _answers(breathlessness="worse", sputum_amount="more",
                                                           sputum_colour="yellow_green"))
    two = next(f for f in fired if f.rule == "copd.symptoms.two-cardinal")
    assert (two.value, two.limit) == (3, 2)


def test_every_standard_rule_cites_its_source() -> None:
    for name in shipped_profiles():
        p = load_profile(name)
        for rule in (*p.rules, *p.trends, *p.consecutive, *p.symptoms):
            assert rule.source.strip(), f"{name}:{rule.id}"
