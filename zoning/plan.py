"""A patient's plan: a standard profile, the doctor's individual overrides, and the self-care advice."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from drivers.measurement import MeasurementKind
from zoning.advice import EMERGENCY, AdviceBook, AdviceText, Language
from zoning.envelope import plan_problems, plausible
from zoning.models import ConsecutiveRule, Profile, ThresholdRule, TrendRule, Zone

CONTROL_ADVICE = "control.repeat"
_R = TypeVar("_R", ThresholdRule, TrendRule, ConsecutiveRule)
# Validation context of a plan kept on the box from an earlier release (`plan_from_document(kept=True)`):
# its problems are reported (`Plan.problems`) instead of refusing it, so an upgrade never stops the box.
KEPT = "kept"


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
        if self.limit is not None and not self.limit.is_finite():
            raise ValueError(f"override of {self.rule}: the limit must be a number")
        return self


def _apply(profile: Profile, overrides: tuple[Override, ...]) -> tuple[Profile, list[str]]:
    """The profile with the overrides applied, and the limits that are implausible in their unit."""
    implausible: list[str] = []
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
                assert o.limit is not None  # the Override validator
                # model_copy does not validate: the range is checked here, for every kind of rule.
                problem = plausible(rule, o.limit)
                if problem:
                    implausible.append(problem)
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
    }), implausible


class Plan(BaseModel):
    """The patient's plan the engine judges by: a standard profile, the clinician's overrides, advice, schedule.

    `plan_hash` names the signed plan it came from (None on a standard profile); the effective rules
    (the profile with the overrides applied) are computed once, at validation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int = Field(ge=1)
    profile: Profile
    overrides: tuple[Override, ...] = ()
    advice: AdviceBook
    enrolled: date
    language: Language = Field(default="nb", description="the language the patient reads the advice in")
    plan_hash: str | None = Field(default=None, description="hash of the signed plan; None for a standard profile")
    measured: tuple[MeasurementKind, ...] = Field(
        default=(), description="the kinds the schedule asks for (each due on its own); empty: every kind "
        "the plan judges that the patient has a device for",
    )
    _effective: Profile = PrivateAttr()
    _rules_hash: str = PrivateAttr()
    _problems: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Plan:
        self._effective, implausible = _apply(self.profile, self.overrides)
        self._rules_hash = self._effective.content_hash()
        # An implausible limit (a typo, a unit mix-up) is the whole story: what it does to the bands is noise.
        problems = tuple(implausible or plan_problems(self.profile, self._effective))
        if problems and not (info.context or {}).get(KEPT):
            raise ValueError("; ".join(problems))
        self._problems = problems
        missing = sorted(k for k in self.advice_keys() if k not in self.advice.texts)
        if missing:
            raise ValueError(f"plan {self.id}: no advice text for {', '.join(missing)}")
        return self

    @property
    def rules(self) -> Profile:
        """The profile with the overrides applied: what readings are judged by."""
        return self._effective

    @property
    def problems(self) -> tuple[str, ...]:
        """Why this plan would be refused today (only a plan kept from an earlier release can have any).

        Beyond the safety envelope a reading is red whatever these rules say; the status shows each problem.
        """
        return self._problems

    @property
    def rules_hash(self) -> str:
        """Hash of the effective rules: two plans judge alike exactly when their hashes are equal."""
        return self._rules_hash

    @property
    def signed_version(self) -> int | None:
        """The signed plan's version, or None while the standard profile is in force."""
        return self.version if self.plan_hash else None

    def advice_keys(self) -> set[str]:
        """Every advice key an assessment under this plan can carry."""
        p = self._effective
        keys = {EMERGENCY, CONTROL_ADVICE}
        for kind in MeasurementKind:
            keys |= {f"{kind}.{zone}" for zone in Zone}
        keys |= {f"symptoms.{zone}" for zone in Zone}
        keys |= {r.advice for r in (*p.rules, *p.trends, *p.consecutive, *p.symptoms) if r.advice}
        return keys


def standard_plan(profile: Profile, advice: AdviceBook, enrolled: date, language: Language = "nb") -> Plan:
    """Before the doctor's individual plan arrives: the standard profile as it is, its own version."""
    return Plan(id=profile.id, version=profile.version, profile=profile, advice=advice, enrolled=enrolled,
                language=language)


_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_HASH = r"^sha256:[0-9a-f]{64}$"


class PlanSchedule(BaseModel):
    """When the measurement schedule starts.

    Daily for the first 14 days from `enrolled`, then weekly, daily again while not green (docs/zoning.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enrolled: date


class PlanDocument(BaseModel):
    """The payload a prescriber and a verifier sign: one patient's plan on one gateway (docs/plans.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["dho-plan"] = "dho-plan"
    tenant: str = Field(pattern=_ID)
    gateway: str = Field(pattern=_ID, description="the one gateway this plan is for")
    patient: str = Field(pattern=_ID, description="patient pseudonym; never a national id")
    # Strict: JSON `true` or `"3"` is not a version. Bounded far below 2^53 (a plan at 2^53 - 1 left no newer
    # version to sign, issue 19.10); the same bound as protocol's MAX_VERSION (zoning may not import it).
    version: int = Field(ge=1, le=2**31 - 1, strict=True,
                         description="grows with every new plan for this patient; never reused")
    issued: AwareDatetime
    expires: AwareDatetime
    profile: str = Field(pattern=_ID, description="the shipped standard profile the plan starts from")
    profile_version: int = Field(ge=1, le=2**31 - 1, strict=True)
    profile_hash: str = Field(pattern=_HASH, description="content hash of that profile, as the drafter saw it")
    overrides: tuple[Override, ...] = Field(default=(), max_length=64)
    schedule: PlanSchedule
    language: Language = "nb"
    advice: dict[str, AdviceText] = Field(default_factory=dict, max_length=200,
                                          description="the plan's own self-care texts over the templates")

    @model_validator(mode="after")
    def _dates(self) -> PlanDocument:
        if self.expires <= self.issued:
            raise ValueError("expires must be later than issued")
        return self


def plan_from_document(document: PlanDocument, profile: Profile, templates: AdviceBook, plan_hash: str, *,
                       kept: bool = False) -> Plan:
    """The plan the engine judges by.

    ValueError when the document does not fit the profile it names (another version or content, a rule it does
    not have, advice missing or without the 113 notice), or its rules cross the safety envelope, are out of
    order or implausible in their unit. With `kept` (a plan already applied on this box, by an earlier
    release) those last problems are kept in `Plan.problems` instead: the box must not stop over them, and
    the envelope still makes every reading beyond it red.
    """
    if (profile.id, profile.version) != (document.profile, document.profile_version):
        raise ValueError(f"plan is drafted on {document.profile} v{document.profile_version} but this gateway "
                         f"has {profile.id} v{profile.version}")
    if profile.content_hash() != document.profile_hash:
        raise ValueError(f"plan is drafted on a {profile.id} v{profile.version} whose rules differ from the "
                         "one shipped on this gateway (profile hash mismatch)")
    fields = {"id": profile.id, "version": document.version, "profile": profile, "overrides": document.overrides,
              "advice": templates.merged(document.advice), "enrolled": document.schedule.enrolled,
              "language": document.language, "plan_hash": plan_hash}
    return Plan.model_validate(fields, context={KEPT: kept})
