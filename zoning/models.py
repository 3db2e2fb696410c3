"""Rules as data (the profile a doctor's order sets) and the assessment they produce."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.measurement import COMPONENTS, MeasurementKind


class Zone(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    # The plan has no threshold for this kind: a nurse looks at it, the patient is told nothing is judged.
    UNASSESSED = "unassessed"


SEVERITY: dict[Zone, int] = {Zone.UNASSESSED: -1, Zone.GREEN: 0, Zone.YELLOW: 1, Zone.RED: 2}

Comparison = Literal["<", "<=", ">", ">="]


class ThresholdRule(BaseModel):
    """One bound: `component op limit` puts the reading in `zone`. Inclusive or not is explicit in `op`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: MeasurementKind
    component: str
    op: Comparison
    limit: Decimal
    zone: Literal[Zone.YELLOW, Zone.RED]
    source: str = Field(min_length=1, description="where the number comes from")

    @model_validator(mode="after")
    def _component_exists(self) -> ThresholdRule:
        if self.component not in COMPONENTS[self.kind]:
            known = ", ".join(sorted(COMPONENTS[self.kind]))
            raise ValueError(f"rule {self.id}: {self.kind} has no component {self.component!r} ({known})")
        return self

    def fires(self, value: Decimal) -> bool:
        match self.op:
            case "<":
                return value < self.limit
            case "<=":
                return value <= self.limit
            case ">":
                return value > self.limit
            case ">=":
                return value >= self.limit


class Profile(BaseModel):
    """A set of threshold rules with a version; a patient's plan starts from one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int = Field(ge=1)
    title: str
    note: str = ""
    rules: tuple[ThresholdRule, ...]

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Profile:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            raise ValueError(f"rule ids used twice: {', '.join(duplicates)}")
        return self


class FiredRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    component: str
    value: Decimal
    op: Comparison
    limit: Decimal
    zone: Zone


class Assessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    zone: Zone
    fired: tuple[FiredRule, ...] = ()
    advice_keys: tuple[str, ...] = ()
    profile: str
    profile_version: int
