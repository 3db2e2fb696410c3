"""Drafting a plan from a standard profile plus the doctor's overrides, and the plain-language diff the
second person reads before signing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from central.errors import CentralError
from central.plans.shipped import advice_templates, shipped_profile
from protocol import Envelope, describe
from zoning import (
    ConsecutiveRule,
    Language,
    Override,
    Plan,
    PlanDocument,
    PlanSchedule,
    Profile,
    SymptomRule,
    ThresholdRule,
    TrendRule,
    plan_from_document,
)

_COMPONENT = {"spo2": "SpO2", "pulse": "pulse", "perfusion_index": "perfusion index", "systolic": "systolic pressure",
              "diastolic": "diastolic pressure", "mean": "mean pressure", "weight": "weight", "bmi": "BMI",
              "height": "height", "temperature": "temperature", "glucose": "glucose"}
_UNIT = {"spo2": "%", "pulse": "/min", "perfusion_index": "%", "systolic": "mmHg", "diastolic": "mmHg",
         "mean": "mmHg", "weight": "kg", "bmi": "kg/m²", "height": "m", "temperature": "°C", "glucose": "mmol/L"}
_OP = {"<": "below", "<=": "at or below", ">": "above", ">=": "at or above"}


def parse_override(rule: str, value: str, order: str) -> Override:
    """`--set RULE=LIMIT ORDER` or `--off RULE ORDER` from the command line."""
    try:
        if value == "off":
            return Override(rule=rule, off=True, reason=order)
        return Override(rule=rule, limit=Decimal(value), reason=order)
    except InvalidOperation:
        raise CentralError(f"override of {rule}: {value!r} is not a number") from None
    except ValidationError as exc:
        raise CentralError(f"override of {rule}: {describe(exc)}") from None


def draft(*, tenant: str, gateway: str, patient: str, version: int, profile: str, overrides: Sequence[Override],
          enrolled: date, issued: datetime, valid_days: int, language: Language) -> PlanDocument:
    """A plan document for one patient on one gateway from a shipped profile and overrides, checked as
    the box will check it (an override of a rule the profile lacks fails here); CentralError if not."""
    base = shipped_profile(profile)
    try:
        document = PlanDocument(
            tenant=tenant, gateway=gateway, patient=patient, version=version, issued=issued,
            expires=issued + timedelta(days=valid_days), profile=base.id, profile_version=base.version,
            profile_hash=base.content_hash(), overrides=tuple(overrides), schedule=PlanSchedule(enrolled=enrolled),
            language=language,
        )
        effective(document)  # an override naming a rule the profile lacks fails here, not on the box
    except ValidationError as exc:
        raise CentralError(f"plan: {describe(exc)}") from None
    return document


def effective(document: PlanDocument, *, published: bool = False) -> Plan:
    """The plan a document makes; CentralError when the box would refuse it (the safety envelope among others).

    `published`: a plan already in force, to diff against. One published before the safety envelope may cross
    it; it must still be readable, so that the plan correcting it can be drafted.
    """
    base = shipped_profile(document.profile)
    if base.content_hash() != document.profile_hash:
        raise CentralError(f"the plan names {document.profile} with other rules than the profile shipped here")
    try:
        if published:
            return plan_from_document(document, base, advice_templates(), "sha256:" + "0" * 64, kept=True)
        return Plan(id=base.id, version=document.version, profile=base, overrides=document.overrides,
                    advice=advice_templates().merged(document.advice), enrolled=document.schedule.enrolled)
    except ValidationError as exc:
        raise CentralError(f"plan: {describe(exc)}") from None
    except ValueError as exc:
        raise CentralError(f"plan: {exc}") from None


def unsigned(document: PlanDocument) -> Envelope:
    """The document in an envelope with no signature yet (what `plan sign` adds to)."""
    return Envelope(payload=document.model_dump(mode="json"))


def number(value: Decimal, component: str) -> str:
    """A value with its unit as a clinician writes it: 88 %, 2.5 kg."""
    return f"{value.normalize():f} {_UNIT.get(component, '')}".strip()


def component_name(component: str) -> str:
    return _COMPONENT.get(component, component)


def _say(rule: ThresholdRule | TrendRule | ConsecutiveRule | SymptomRule) -> str:
    if isinstance(rule, SymptomRule):
        return f"symptom rule {rule.id} ({rule.zone})"
    name = _COMPONENT.get(rule.component, rule.component)
    if isinstance(rule, TrendRule):
        return (f"{name} {rule.zone} on a {rule.change} of {_OP[rule.op]} {number(rule.amount, rule.component)} "
                f"within {rule.days} days")
    text = f"{name} {rule.zone} {_OP[rule.op]} {number(rule.limit, rule.component)}"
    if isinstance(rule, ConsecutiveRule):
        text += f" {rule.count} times in a row"
    return text


def _value(rule: ThresholdRule | TrendRule | ConsecutiveRule | SymptomRule) -> str:
    if isinstance(rule, TrendRule):
        return number(rule.amount, rule.component)
    if isinstance(rule, SymptomRule):
        return "on"
    return number(rule.limit, rule.component)


_AnyRule = ThresholdRule | TrendRule | ConsecutiveRule | SymptomRule


def _rules(profile: Profile) -> dict[str, _AnyRule]:
    found: list[_AnyRule] = [*profile.rules, *profile.trends, *profile.consecutive, *profile.symptoms]
    return {r.id: r for r in found}


def describe_changes(before: PlanDocument | None, after: PlanDocument) -> list[str]:
    """What changes for the patient, one line per rule, in the words of the order ("SpO2 red at or below
    88 % instead of 90 %, GP order 2026-11-02"). `before` is the plan in force; None: the standard profile."""
    new = effective(after)
    old_rules = _rules(effective(before, published=True).rules if before else shipped_profile(after.profile))
    new_rules = _rules(new.rules)
    base_rules = _rules(new.profile)
    orders = {o.rule: o.reason for o in after.overrides}
    lines = []
    for rule_id in sorted(set(old_rules) | set(base_rules), key=list(base_rules).index):
        old, now = old_rules.get(rule_id), new_rules.get(rule_id)
        why = orders.get(rule_id) or "back to the standard profile"
        if old == now:
            continue
        if now is None and old is not None:
            lines.append(f"{_say(old)}: switched off, {why}")
        elif old is None and now is not None:
            lines.append(f"{_say(now)}: switched on again, {why}")
        elif old is not None and now is not None:
            lines.append(f"{_say(now)} instead of {_value(old)}, {why}")
    if before is None or before.profile != after.profile:
        start = "the standard profile" if before is None else f"{before.profile} v{before.profile_version}"
        lines.insert(0, f"starts from {after.profile} v{after.profile_version} (was {start})")
    if before is not None and before.schedule != after.schedule:
        lines.append(f"schedule counts from {after.schedule.enrolled} instead of {before.schedule.enrolled}")
    if before is not None and before.language != after.language:
        lines.append(f"advice language {after.language} instead of {before.language}")
    if not lines:
        lines.append("no change to any threshold")
    return lines


def summary(document: PlanDocument) -> str:
    return (f"plan v{document.version} for gateway {document.gateway} (tenant {document.tenant}), "
            f"valid {document.issued:%Y-%m-%d} to {document.expires:%Y-%m-%d}, on {document.profile} "
            f"v{document.profile_version}, {len(document.overrides)} override(s)")
