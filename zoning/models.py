"""Rules as data (the profile a doctor's order sets) and the assessment they produce."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.measurement import COMPONENTS, MeasurementKind
from zoning.questionnaire import QUESTIONS
from zoning.resolution import band_step, in_band


class Zone(StrEnum):
    """The traffic light a reading gets; `UNASSESSED` when nothing could be judged, never shown as green."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    # Nothing could be judged: the plan has no threshold for this kind, or the device flagged the
    # measurement as unreliable. Never shown as green.
    UNASSESSED = "unassessed"


SEVERITY: dict[Zone, int] = {Zone.UNASSESSED: -1, Zone.GREEN: 0, Zone.YELLOW: 1, Zone.RED: 2}
AlertZone = Literal[Zone.YELLOW, Zone.RED]

Comparison = Literal["<", "<=", ">", ">="]


def compare(value: Decimal, op: Comparison, limit: Decimal) -> bool:
    """Whether `value op limit` holds, exactly (Decimals, no resolution applied: see `band_step` for that)."""
    match op:
        case "<":
            return value < limit
        case "<=":
            return value <= limit
        case ">":
            return value > limit
        case ">=":
            return value >= limit


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    zone: AlertZone
    source: str = Field(min_length=1, description="where the number comes from, or 'design choice: why'")
    advice: str | None = Field(default=None, description="an extra advice key shown when this rule fires")


class _ComponentRule(_Rule):
    kind: MeasurementKind
    component: str

    @model_validator(mode="after")
    def _component_exists(self) -> _ComponentRule:
        if self.component not in COMPONENTS[self.kind]:
            known = ", ".join(sorted(COMPONENTS[self.kind]))
            raise ValueError(f"rule {self.id}: {self.kind} has no component {self.component!r} ({known})")
        return self


class ThresholdRule(_ComponentRule):
    """One bound: `component op limit` puts the reading in `zone`. Inclusive or not is explicit in `op`."""

    op: Comparison
    limit: Decimal

    def fires(self, value: Decimal) -> bool:
        """Whether `value` is in this rule's band, compared at the component's resolution."""
        # At the band's resolution: a value between two whole-number bands counts in the alert band.
        return in_band(value, self.op, self.limit, band_step(self.kind, self.component, self.limit))


class TrendRule(_ComponentRule):
    """A change within a window of local calendar days.

    A rise against the lowest reading of the window (body weight up more than 2 kg in 3 days), or a fall
    against the highest.
    """

    change: Literal["rise", "fall"]
    op: Literal[">", ">="]
    amount: Decimal = Field(gt=0)
    days: int = Field(ge=1, le=31, description="the window: this reading's local date and the `days` before it")
    look_back_days: int = Field(
        default=14, ge=1, le=60,
        description="with nothing in the window (missed days): compare with the last reading this far back",
    )

    @model_validator(mode="after")
    def _look_back_covers_the_window(self) -> TrendRule:
        if self.look_back_days < self.days:
            raise ValueError(f"rule {self.id}: look_back_days {self.look_back_days} is shorter than days {self.days}")
        return self

    def fires(self, change: Decimal) -> bool:
        """Whether `change` (a rise or a fall, positive) reaches the rule's `amount`, at the component's resolution."""
        return in_band(change, self.op, self.amount, band_step(self.kind, self.component, self.amount))


class ConsecutiveRule(_ComponentRule):
    """`component op limit` on `count` readings in a row of this kind (this one included)."""

    op: Comparison
    limit: Decimal
    count: int = Field(ge=2, le=14)

    def fires(self, value: Decimal) -> bool:
        """Whether one value of the run is in this rule's band, at the component's resolution."""
        return in_band(value, self.op, self.limit, band_step(self.kind, self.component, self.limit))


class SymptomRule(_Rule):
    """Questionnaire answers: fires when at least `at_least` of the listed conditions hold."""

    conditions: dict[str, tuple[str, ...]] = Field(min_length=1, description="question -> answers that count")
    at_least: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _answers_exist(self) -> SymptomRule:
        for question, answers in self.conditions.items():
            if question not in QUESTIONS:
                raise ValueError(f"rule {self.id}: no question {question!r} ({', '.join(sorted(QUESTIONS))})")
            unknown = set(answers) - set(QUESTIONS[question])
            if unknown:
                raise ValueError(f"rule {self.id}: {question} has no answer(s) {', '.join(sorted(unknown))}")
        if self.at_least > len(self.conditions):
            raise ValueError(f"rule {self.id}: at_least {self.at_least} of only {len(self.conditions)} condition(s)")
        return self


class Profile(BaseModel):
    """A standard set of rules with a version; a patient's plan starts from one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int = Field(ge=1)
    title: str
    note: str = ""
    rules: tuple[ThresholdRule, ...] = ()
    trends: tuple[TrendRule, ...] = ()
    consecutive: tuple[ConsecutiveRule, ...] = ()
    symptoms: tuple[SymptomRule, ...] = ()

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Profile:
        ids = [r.id for r in (*self.rules, *self.trends, *self.consecutive, *self.symptoms)]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            raise ValueError(f"rule ids used twice: {', '.join(duplicates)}")
        return self

    def advice_for(self, rule_id: str) -> str | None:
        """The extra advice key of the rule with this id, or None (no such rule, or no extra advice)."""
        for rule in (*self.rules, *self.trends, *self.consecutive, *self.symptoms):
            if rule.id == rule_id:
                return rule.advice
        return None

    @property
    def questions(self) -> tuple[str, ...]:
        """The questions the symptom rules ask, in the questionnaire's order: a form needs all of them to be green."""
        asked = {q for r in self.symptoms for q in r.conditions}
        return tuple(q for q in QUESTIONS if q in asked)

    @property
    def kinds(self) -> frozenset[MeasurementKind]:
        """The measurement kinds some rule of the profile judges (questionnaires left out)."""
        return frozenset(r.kind for r in (*self.rules, *self.trends, *self.consecutive))

    def content_hash(self) -> str:
        """`sha256:<hex>` of the rules in RFC 8785 canonical JSON (decimals as strings).

        Any change to a bound, a zone, a source text or the id/version changes it; TOML comments and layout do
        not.
        """
        return "sha256:" + hashlib.sha256(rfc8785.dumps(self.model_dump(mode="json"))).hexdigest()


class FiredRule(BaseModel):
    """A rule that fired and the value that fired it (for a trend: the change; for symptoms: the count)."""

    model_config = ConfigDict(frozen=True)

    rule: str
    component: str
    value: Decimal
    op: Comparison
    limit: Decimal
    zone: Zone


class Assessment(BaseModel):
    """The judgement of one reading: zone, the rules that fired, the advice to show, and what judged it.

    It names the rules in force (`rules_hash`, the plan's version and hash) so a nurse can tell later
    which rules a reading was judged by.
    """

    model_config = ConfigDict(frozen=True)

    zone: Zone
    fired: tuple[FiredRule, ...] = ()
    advice_keys: tuple[str, ...] = ()
    profile: str = Field(description="the standard profile the rules start from")
    profile_version: int
    rules_hash: str = Field(description="hash of the effective rules (profile + overrides): tells rule sets apart")
    plan_version: int | None = Field(default=None, description="the signed plan's version; None on a standard profile")
    plan_hash: str | None = Field(default=None, description="hash of the signed plan's payload")
    next_due: date | None = Field(default=None, description="local date the next measurement is due")
    control: tuple[str, ...] = Field(default=(), description="why a repeat (control) measurement is asked for")
    repeat_of: str | None = Field(default=None, description="the reading this one repeats as a control measurement")
    unjudged: bool = Field(
        default=False, description="unassessed only because no rule had an earlier reading to compare with",
    )
    notes: tuple[str, ...] = Field(
        default=(), description="how a rule had to judge, for the nurse: a trend compared across missed days, "
        "a rule that could not judge for want of an earlier reading, what a partly answered form was judged on",
    )
    unanswered: tuple[str, ...] = Field(
        default=(), description="a questionnaire: the questions the plan asks that were left unanswered",
    )
