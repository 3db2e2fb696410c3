"""The COPD questionnaire (issue 18.6): zoned by the self-care plan's signs, a partly answered form says what it
judged and is never green, and its zone counts in the schedule like a reading's.

The signs (service-model.md, egenbehandlingsplan; Anthonisen et al. 1987): worse breathing, more sputum,
discoloured sputum are cardinal (one yellow, two red; much more breathless red); increased cough and fever are
minor criteria (yellow). Written here from those sources, not from the profile files.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from drivers.measurement import MeasurementKind as K
from tests.zoning_support import OSLO, T0, Patient, measurement, plan
from zoning import (
    QUESTIONNAIRE,
    QUESTIONS,
    Answers,
    Override,
    Plan,
    Zone,
    assess_answers,
    next_due,
    remembered_answers,
)

USUAL = {"breathlessness": "usual", "cough": "usual", "sputum_amount": "usual", "sputum_colour": "clear",
         "temperature_feeling": "normal"}
PROFILES = ["standard-copd", "standard-copd-scale2"]


def judge(p: Plan, **given: str) -> tuple[Zone, tuple[str, ...], tuple[str, ...]]:
    a = assess_answers(Answers(answered=T0, answers=given), history=[], plan=p, tz=OSLO)
    return a.zone, a.notes, a.unanswered


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("change", "zone"), [
    ({}, Zone.GREEN),
    ({"breathlessness": "worse"}, Zone.YELLOW),
    ({"breathlessness": "much_worse"}, Zone.RED),
    ({"sputum_amount": "more"}, Zone.YELLOW),
    ({"sputum_amount": "much_more"}, Zone.YELLOW),
    ({"sputum_colour": "white"}, Zone.GREEN),
    ({"sputum_colour": "yellow_green"}, Zone.YELLOW),
    ({"sputum_colour": "brown_red"}, Zone.YELLOW),
    ({"temperature_feeling": "feverish"}, Zone.YELLOW),
    ({"cough": "worse"}, Zone.YELLOW),
    ({"cough": "much_worse"}, Zone.YELLOW),  # the reviewer's case: it was green
    ({"breathlessness": "worse", "sputum_amount": "more"}, Zone.RED),
    ({"sputum_amount": "more", "sputum_colour": "yellow_green"}, Zone.RED),
    ({"breathlessness": "worse", "sputum_amount": "much_more", "sputum_colour": "brown_red"}, Zone.RED),
    ({"cough": "much_worse", "temperature_feeling": "feverish"}, Zone.YELLOW),  # minor criteria alone
])
def test_a_complete_form_is_zoned_by_the_self_care_plans_signs(profile: str, change: dict[str, str],
                                                              zone: Zone) -> None:
    got, notes, unanswered = judge(plan(profile), **{**USUAL, **change})
    assert (got, notes, unanswered) == (zone, (), ())


@pytest.mark.parametrize("profile", PROFILES)
def test_every_question_is_asked_by_some_rule(profile: str) -> None:
    assert plan(profile).rules.questions == tuple(QUESTIONS)


def test_one_answered_question_is_not_enough_for_green_and_the_form_says_what_it_judged() -> None:
    zone, notes, unanswered = judge(plan("standard-copd"), breathlessness="usual")
    assert zone == Zone.UNASSESSED
    assert unanswered == ("cough", "sputum_amount", "sputum_colour", "temperature_feeling")
    assert notes == ("judged on 1 of 5 questions (breathlessness); not answered: cough, sputum_amount, "
                     "sputum_colour, temperature_feeling: the answers given show no worsening, but an unanswered "
                     "form cannot be called green",)
    empty = judge(plan("standard-copd"))
    assert empty[0] == Zone.UNASSESSED and "judged on 0 of 5 questions (none)" in empty[1][0]


def test_a_partly_answered_form_keeps_the_zone_its_answers_give() -> None:
    zone, notes, unanswered = judge(plan("standard-copd"), breathlessness="much_worse", cough="usual")
    assert zone == Zone.RED and unanswered == ("sputum_amount", "sputum_colour", "temperature_feeling")
    assert notes[0].endswith("red on the answers given; the unanswered ones could make it worse")
    assert judge(plan("standard-copd"), sputum_colour="yellow_green")[0] == Zone.YELLOW
    # Four of five usual and one left out: still not green.
    partial = dict(USUAL)
    del partial["temperature_feeling"]
    assert judge(plan("standard-copd"), **partial)[0] == Zone.UNASSESSED


def test_a_question_whose_rule_the_doctor_switched_off_is_not_needed_for_green() -> None:
    p = plan("standard-copd")
    off = Plan(id=p.id, version=2, profile=p.profile, advice=p.advice, enrolled=p.enrolled, overrides=(
        Override(rule="copd.symptoms.cough", off=True, reason="GP order 2026-11-02"),))
    answers = dict(USUAL)
    del answers["cough"]
    assert judge(off, **answers) == (Zone.GREEN, (), ())


def test_a_plan_without_symptom_rules_leaves_the_form_unassessed() -> None:
    assert judge(plan("standard-heart-failure"), **USUAL)[0] == Zone.UNASSESSED


def test_a_red_form_makes_the_schedule_daily_like_a_red_reading() -> None:
    """After the start-up days the patient measures weekly; a red questionnaire the day after a green reading
    makes every kind due the next day, as a red reading would. The pipeline keeps the form in history
    (`remembered_answers`) for this to hold after a restart."""
    p = plan("standard-copd", enrolled=date(2026, 9, 1))
    patient = Patient(p)
    patient.measure(measurement(K.SPO2, spo2=97, pulse=70), T0)
    assert next_due(p.enrolled, patient.history, OSLO, kind=K.SPO2).on == T0.date() + timedelta(days=7)
    answered = T0 + timedelta(days=1)
    answers = Answers(answered=answered, answers={**USUAL, "breathlessness": "much_worse"})
    a = assess_answers(answers, history=patient.history, plan=p, tz=OSLO)
    assert a.zone == Zone.RED and a.next_due == answered.date() + timedelta(days=1)
    past = remembered_answers("q1", answers, a)
    assert (past.kind, past.zone, past.values) == (QUESTIONNAIRE, Zone.RED, {})
    history = [*patient.history, past]
    assert next_due(p.enrolled, history, OSLO, kind=K.SPO2).on == answered.date() + timedelta(days=1)
    # The form is due on its own: answering it does not count as measuring.
    assert next_due(p.enrolled, history, OSLO).on == answered.date() + timedelta(days=1)
