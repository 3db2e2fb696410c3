"""A patient's plan: a standard profile, the doctor's individual overrides, and the self-care advice."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from drivers.measurement import MeasurementKind
from zoning.advice import EMERGENCY, AdviceBook
from zoning.models import ConsecutiveRule, Profile, ThresholdRule, TrendRule, Zone

CONTROL_ADVICE = "control.repeat"
_R = TypeVar("_R", ThresholdRule, TrendRule, ConsecutiveRule)


class Override(BaseModel):
    """The doctor's order for one rule: a new limit (for a trend, the amount), or the rule off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    limit: Decimal | None = None
    off: bool = False
    reason: str = Field(min_length=1, description="the order it comes from, e.g. 'GP order 2026-11-02'")

    @model_validator(mode="after")
    def _one_change(self) -> Override:
        if (self.limit is None) == (not self.off):
            raise ValueError(f"override of {self.rule}: give either a new limit or off = true")
        return self


def _apply(profile: Profile, overrides: tuple[Override, ...]) -> Profile:
    by_rule = {o.rule: o for o in overrides}
    known = {r.id for r in (*profile.rules, *profile.trends, *profile.consecutive, *profile.symptoms)}
    unknown = sorted(set(by_rule) - known)
    if unknown:
        raise ValueError(f"overrides name rule(s) the profile {profile.id} does not have: {', '.join(unknown)}")

    def keep(rules: tuple[_R, ...], field: str) -> tuple[_R, ...]:
        out = []
        for rule in rules:
            o = by_rule.get(rule.id)
            if o is None:
                out.append(rule)
            elif not o.off:
                out.append(rule.model_copy(update={field: o.limit}))
        return tuple(out)

    symptoms = tuple(r for r in profile.symptoms if not (r.id in by_rule and by_rule[r.id].off))
    if any(r.id in by_rule and not by_rule[r.id].off for r in profile.symptoms):
        raise ValueError("symptom rules can only be switched off, not given a limit")
    return profile.model_copy(update={
        "rules": keep(profile.rules, "limit"),
        "trends": keep(profile.trends, "amount"),
        "consecutive": keep(profile.consecutive, "limit"),
        "symptoms": symptoms,
    })


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int = Field(ge=1)
    profile: Profile
    overrides: tuple[Override, ...] = ()
    advice: AdviceBook
    enrolled: date
    measured: tuple[MeasurementKind, ...] = Field(
        default=(), description="the kinds the schedule asks for (each due on its own); empty: every kind "
        "the plan judges that the patient has a device for",
    )
    _effective: Profile = PrivateAttr()

    @model_validator(mode="after")
    def _resolve(self) -> Plan:
        self._effective = _apply(self.profile, self.overrides)
        missing = sorted(k for k in self.advice_keys() if k not in self.advice.texts)
        if missing:
            raise ValueError(f"plan {self.id}: no advice text for {', '.join(missing)}")
        return self

    @property
    def rules(self) -> Profile:
        """The profile with the overrides applied: what readings are judged by."""
        return self._effective

    def advice_keys(self) -> set[str]:
        """Every advice key an assessment under this plan can carry."""
        p = self._effective
        keys = {EMERGENCY, CONTROL_ADVICE}
        for kind in MeasurementKind:
            keys |= {f"{kind}.{zone}" for zone in Zone}
        keys |= {f"symptoms.{zone}" for zone in Zone}
        keys |= {r.advice for r in (*p.rules, *p.trends, *p.consecutive, *p.symptoms) if r.advice}
        return keys


def standard_plan(profile: Profile, advice: AdviceBook, enrolled: date) -> Plan:
    """Before the doctor's individual plan arrives: the standard profile as it is, its own version."""
    return Plan(id=profile.id, version=profile.version, profile=profile, advice=advice, enrolled=enrolled)
