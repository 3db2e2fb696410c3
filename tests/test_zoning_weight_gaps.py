"""A heart-failure weight gain across missed days (issue 9.5): never green, and the assessment says
what it compared with, or that it could not judge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drivers.measurement import MeasurementKind as K
from tests.zoning_support import T0, Patient, measurement, plan
from zoning import Zone


def _daily_then_gap(missed: int) -> Patient:
    """80 kg every morning for four days, then `missed` days without a weighing."""
    patient = Patient(plan("standard-heart-failure"))
    for day in range(4):
        patient.measure(measurement(K.BODY_WEIGHT, weight="80.0"), T0 + timedelta(days=day))
    return patient


@pytest.mark.parametrize("missed", [3, 5, 9])
def test_a_five_kg_gain_after_missed_days_is_red_and_says_what_it_was_compared_with(missed: int) -> None:
    patient = _daily_then_gap(missed)
    a = patient.measure(measurement(K.BODY_WEIGHT, weight="85.0"), T0 + timedelta(days=3 + missed + 1))
    assert a.zone == Zone.RED
    assert "weight.gain.red" in {f.rule for f in a.fired}
    assert any(f"{missed + 1} days earlier" in note for note in a.notes), a.notes


def test_a_small_change_after_missed_days_stays_green_and_still_says_so() -> None:
    patient = _daily_then_gap(4)
    a = patient.measure(measurement(K.BODY_WEIGHT, weight="80.5"), T0 + timedelta(days=8))
    assert a.zone == Zone.GREEN and a.fired == ()
    assert any("nothing in the 3-day window" in note for note in a.notes)


def test_a_gain_after_a_gap_longer_than_the_look_back_is_not_judged_and_never_green() -> None:
    patient = _daily_then_gap(20)
    a = patient.measure(measurement(K.BODY_WEIGHT, weight="85.0"), T0 + timedelta(days=24))
    assert a.zone == Zone.UNASSESSED
    assert any("could not be judged" in note for note in a.notes)
    # The next day's weighing has a reference again and is judged.
    b = patient.measure(measurement(K.BODY_WEIGHT, weight="85.2"), T0 + timedelta(days=25))
    assert b.zone == Zone.GREEN and b.notes == ()


def test_the_first_weighing_cannot_be_judged_by_a_trend_rule_alone() -> None:
    a = Patient(plan("standard-heart-failure")).measure(measurement(K.BODY_WEIGHT, weight="80.0"), T0)
    assert a.zone == Zone.UNASSESSED and any("could not be judged" in note for note in a.notes)
    # The patient is told it is kept as the reference, not "could not be assessed, weigh again".
    assert a.advice_keys[0] == "reference" and "body_weight.unassessed" not in a.advice_keys



def test_daily_weighing_is_judged_within_the_window_without_a_note() -> None:
    patient = _daily_then_gap(0)
    a = patient.measure(measurement(K.BODY_WEIGHT, weight="82.1"), T0 + timedelta(days=4))
    assert a.zone == Zone.RED and a.notes == ()


def test_a_saturation_fall_across_a_week_between_readings_is_seen() -> None:
    patient = Patient(plan("standard-copd-scale2"))
    patient.measure(measurement(K.SPO2, spo2=92, pulse=70), T0)
    a = patient.measure(measurement(K.SPO2, spo2=89, pulse=70), T0 + timedelta(days=7))  # weekly cadence
    assert a.zone == Zone.YELLOW and "spo2.fall" in {f.rule for f in a.fired}
