"""Evaluating the rules of a profile against one reading and its history. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from zoning.history import PastReading, local_date, usable
from zoning.models import (
    ConsecutiveRule,
    FiredRule,
    Profile,
    SymptomRule,
    ThresholdRule,
    TrendRule,
)
from zoning.questionnaire import Answers


def _fired(rule: ThresholdRule | TrendRule | ConsecutiveRule, value: Decimal, limit: Decimal) -> FiredRule:
    return FiredRule(rule=rule.id, component=rule.component, value=value, op=rule.op, limit=limit, zone=rule.zone)


def thresholds(profile: Profile, kind: str, values: dict[str, Decimal]) -> list[FiredRule]:
    """The threshold rules of `kind` that fire on `values`, in the profile's order."""
    return [
        _fired(rule, values[rule.component], rule.limit)
        for rule in profile.rules
        if rule.kind == kind and rule.component in values and rule.fires(values[rule.component])
    ]


class Trends(NamedTuple):
    """What the trend rules found for one reading: the rules that fired, notes for the nurse, whether any judged."""

    fired: list[FiredRule]
    notes: list[str]  # what the nurse should know about how (or whether) a trend was judged
    judged: bool  # at least one trend rule had something to compare with


def trends(
    profile: Profile, kind: str, values: dict[str, Decimal], effective: datetime,
    history: Sequence[PastReading], tz: ZoneInfo,
) -> Trends:
    """The trend rules of `kind` judged against the patient's readings in each rule's window of local days.

    With nothing in the window (missed days) the last reading within `look_back_days` is the
    reference, and a note says so; with nothing there either, the rule cannot judge (a note too).
    """
    fired, notes, judged = [], [], False
    for rule in profile.trends:
        if rule.kind != kind or rule.component not in values:
            continue
        # Calendar days in the patient's zone, not 72 hours: "3 days" must mean the same across a DST
        # change and whether the patient weighed at 07:00 or 07:40.
        today = local_date(effective, tz)
        earlier = usable(history, rule.kind, rule.component, effective)
        first_day = today - timedelta(days=rule.days)
        window = [r.values[rule.component] for r in earlier if local_date(r.effective, tz) >= first_day]
        if window:
            reference = min(window) if rule.change == "rise" else max(window)
        else:
            # Missed days: a gain across them is at least as worrying as one inside the window, so the
            # last reading within the look-back is the reference. Slower gains may fire too: the nurse
            # sees the note and judges; a +5 kg after three missed days must never pass as green.
            back = [r for r in earlier if local_date(r.effective, tz) >= today - timedelta(days=rule.look_back_days)]
            if not back:
                notes.append(f"{rule.id}: no earlier {rule.component} reading in the {rule.look_back_days} days "
                             "before: the trend could not be judged")
                continue
            reference = back[-1].values[rule.component]
            gap = (today - local_date(back[-1].effective, tz)).days
            notes.append(f"{rule.id}: nothing in the {rule.days}-day window; compared with the last reading, "
                         f"{gap} days earlier")
        judged = True
        value = values[rule.component]
        change = value - reference if rule.change == "rise" else reference - value
        if rule.fires(change):
            fired.append(_fired(rule, change, rule.amount))
    return Trends(fired, notes, judged)


def consecutive(
    profile: Profile, kind: str, values: dict[str, Decimal], effective: datetime, history: Sequence[PastReading],
) -> list[FiredRule]:
    """The run rules of `kind` that fire: this value and the `count - 1` usable readings before it all in the band."""
    fired = []
    for rule in profile.consecutive:
        if rule.kind != kind or rule.component not in values:
            continue
        earlier = usable(history, rule.kind, rule.component, effective)[-(rule.count - 1):]
        run = [r.values[rule.component] for r in earlier] + [values[rule.component]]
        if len(run) == rule.count and all(rule.fires(v) for v in run):
            fired.append(_fired(rule, values[rule.component], rule.limit))
    return fired


def symptoms(profile: Profile, answers: Answers) -> list[FiredRule]:
    """The symptom rules that fire on the questionnaire's answers (at least `at_least` of their conditions)."""
    fired = []
    for rule in profile.symptoms:
        met = _conditions_met(rule, answers)
        if met >= rule.at_least:
            fired.append(FiredRule(rule=rule.id, component="questionnaire", value=Decimal(met), op=">=",
                                   limit=Decimal(rule.at_least), zone=rule.zone))
    return fired


def _conditions_met(rule: SymptomRule, answers: Answers) -> int:
    return sum(answers.answers.get(question) in accepted for question, accepted in rule.conditions.items())
