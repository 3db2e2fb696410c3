"""Evaluating the rules of a profile against one reading and its history. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from zoning.history import PastReading, local_date, usable
from zoning.models import (
    ConsecutiveRule,
    FiredRule,
    Profile,
    SymptomRule,
    ThresholdRule,
    TrendRule,
    compare,
)
from zoning.questionnaire import Answers


def _fired(rule: ThresholdRule | TrendRule | ConsecutiveRule, value: Decimal, limit: Decimal) -> FiredRule:
    return FiredRule(rule=rule.id, component=rule.component, value=value, op=rule.op, limit=limit, zone=rule.zone)


def thresholds(profile: Profile, kind: str, values: dict[str, Decimal]) -> list[FiredRule]:
    return [
        _fired(rule, values[rule.component], rule.limit)
        for rule in profile.rules
        if rule.kind == kind and rule.component in values and rule.fires(values[rule.component])
    ]


def trends(
    profile: Profile, kind: str, values: dict[str, Decimal], effective: datetime,
    history: Sequence[PastReading], tz: ZoneInfo,
) -> list[FiredRule]:
    fired = []
    for rule in profile.trends:
        if rule.kind != kind or rule.component not in values:
            continue
        # Calendar days in the patient's zone, not 72 hours: "3 days" must mean the same across a DST
        # change and whether the patient weighed at 07:00 or 07:40.
        first_day = local_date(effective, tz) - timedelta(days=rule.days)
        window = [r.values[rule.component] for r in usable(history, rule.kind, rule.component, effective)
                  if local_date(r.effective, tz) >= first_day]
        if not window:
            continue  # a gap in the data: nothing to compare with, so no trend is claimed either way
        value = values[rule.component]
        change = value - min(window) if rule.change == "rise" else max(window) - value
        if compare(change, rule.op, rule.amount):
            fired.append(_fired(rule, change, rule.amount))
    return fired


def consecutive(
    profile: Profile, kind: str, values: dict[str, Decimal], effective: datetime, history: Sequence[PastReading],
) -> list[FiredRule]:
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
    fired = []
    for rule in profile.symptoms:
        met = _conditions_met(rule, answers)
        if met >= rule.at_least:
            fired.append(FiredRule(rule=rule.id, component="questionnaire", value=Decimal(met), op=">=",
                                   limit=Decimal(rule.at_least), zone=rule.zone))
    return fired


def _conditions_met(rule: SymptomRule, answers: Answers) -> int:
    return sum(answers.answers.get(question) in accepted for question, accepted in rule.conditions.items())
