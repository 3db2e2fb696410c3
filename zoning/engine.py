"""One reading (or one day's questionnaire) + history + plan -> Assessment. Pure: time is passed in.

Order of judgement (docs/zoning.md):
1. every threshold, trend and consecutive rule of the plan; the worst zone that fires wins; beyond the
   safety envelope (`zoning.envelope`) the reading is red whatever the plan says;
2. a kind the plan has no rule for is `unassessed`, and so is a reading no rule could judge (a trend
   rule with no earlier reading within its look-back); so is a reading the device flagged as unreliable
   that would otherwise be green (no data is never green);
3. a suspect reading asks for a control measurement but keeps its zone: a red stays red;
4. advice keys: the kind and zone, any rule's own advice, the repeat request, and on red the
   emergency notice; then the next measurement due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from drivers.measurement import Measurement, MeasurementKind
from zoning import rules
from zoning.advice import EMERGENCY, REFERENCE
from zoning.control import control_asked_for, control_reasons, unreliable
from zoning.envelope import envelope_fired
from zoning.history import PastReading
from zoning.models import SEVERITY, Assessment, FiredRule, Profile, Zone
from zoning.plan import CONTROL_ADVICE, Plan
from zoning.questionnaire import QUESTIONNAIRE, Answers
from zoning.schedule import next_due


def _worst(fired: Sequence[FiredRule]) -> Zone:
    return max((f.zone for f in fired), key=SEVERITY.__getitem__, default=Zone.GREEN)


def _judged(profile: Profile, kind: MeasurementKind, values: dict[str, Decimal], trend_judged: bool) -> bool:
    """Whether any rule of the plan could judge this reading.

    A threshold or run rule on a component it carries, or a trend rule that had an earlier reading to compare
    with. If none could, it is unassessed (the first weighing of a heart-failure patient, whose only rule is
    the weight trend): no data is never green.
    """
    if trend_judged:
        return True
    return any(r.kind == kind and r.component in values for r in (*profile.rules, *profile.consecutive))


def _advice(first: str, plan: Plan, fired: Sequence[FiredRule], zone: Zone, control: bool) -> tuple[str, ...]:
    keys = [first]
    for f in fired:
        extra = plan.rules.advice_for(f.rule)
        if extra and extra not in keys:
            keys.append(extra)
    if control:
        keys.append(CONTROL_ADVICE)
    if zone == Zone.RED:
        keys.append(EMERGENCY)
    return tuple(keys)


def _first_advice(kind: str, zone: Zone, unjudged: bool, plan: Plan) -> str:
    """The zone's advice.

    For a reading unjudged only for want of an earlier one, that it is the reference the next is compared with
    (when the plan's advice has that text; a plan's own advice may not).
    """
    if unjudged and REFERENCE in plan.advice.texts:
        return REFERENCE
    return f"{kind}.{zone}"


def _judged_by(plan: Plan) -> dict[str, Any]:
    """What every assessment names of its rules, so the central side can tell any two rule sets apart."""
    return {"profile": plan.profile.id, "profile_version": plan.profile.version, "rules_hash": plan.rules_hash,
            "plan_version": plan.signed_version, "plan_hash": plan.plan_hash}


def assess_reading(
    m: Measurement, *, reading_id: str, effective: datetime, history: Sequence[PastReading], plan: Plan, tz: ZoneInfo,
) -> Assessment:
    """Judge one measurement against the plan: its zone, the rules that fired, the advice, the next due date.

    `effective` is the corrected measurement time; `history` the patient's earlier readings (at least
    the `LOOKBACK` and `AT_LEAST` of its kind); local days are counted in `tz`. A reading no rule could
    judge, or a green the device flagged as unreliable, is `Zone.UNASSESSED`, never green. Pure.
    """
    profile = plan.rules
    values = {name: q.value for name, q in m.components.items()}
    trend = rules.trends(profile, m.kind, values, effective, history, tz)
    fired = [
        *rules.thresholds(profile, m.kind, values),
        *trend.fired,
        *rules.consecutive(profile, m.kind, values, effective, history),
    ]
    notes = list(trend.notes)
    beyond, beyond_notes = envelope_fired(m.kind, values, effective, history, tz)
    if beyond and _worst(fired) != Zone.RED:
        # Beyond the safety envelope a reading is red whatever the plan says, even a kind it does not judge;
        # named only where it changes the zone (a valid plan's own red covers the envelope).
        fired += beyond
        notes += [n for n in beyond_notes if n not in notes]
    judged = _judged(profile, m.kind, values, trend.judged) or bool(beyond)
    unjudged = m.kind in profile.kinds and not judged and not unreliable(m)
    zone = _worst(fired) if judged else Zone.UNASSESSED
    if zone == Zone.GREEN and unreliable(m):
        zone = Zone.UNASSESSED
    repeated = control_asked_for(m.kind, effective, history)
    # One repeat is asked for, not a loop: the repeat's own zone stands, whatever it shows.
    control = () if repeated else control_reasons(m, effective, history)
    this = PastReading(id=reading_id, kind=m.kind, values=values, effective=effective, zone=zone,
                       control=bool(control), unjudged=unjudged)
    return Assessment(
        zone=zone,
        fired=tuple(fired),
        advice_keys=_advice(_first_advice(m.kind, zone, unjudged, plan), plan, fired, zone, bool(control)),
        **_judged_by(plan),
        next_due=next_due(plan.enrolled, [*history, this], tz, kind=m.kind).on,  # of this kind
        control=control,
        repeat_of=repeated.id if repeated else None,
        unjudged=unjudged,
        notes=tuple(notes),
    )


def assess_answers(answers: Answers, *, history: Sequence[PastReading], plan: Plan, tz: ZoneInfo) -> Assessment:
    """Judge a questionnaire's answers by the plan's symptom rules. Pure.

    The worst zone that fires wins, as for a reading. A form is green only when every question the plan's
    rules ask was answered and none fired: a partly answered form keeps the yellow or red its answers give,
    is unassessed (never green) when they give nothing, and its `notes` and `unanswered` say what it was
    judged on. Unassessed when the plan has no symptom rules. Its zone counts in the schedule like a
    reading's (`next_due` is the questionnaire's own, counting this form).
    """
    fired = rules.symptoms(plan.rules, answers)
    asked = plan.rules.questions
    missing = tuple(q for q in asked if q not in answers.answers)
    zone = _worst(fired) if plan.rules.symptoms else Zone.UNASSESSED
    if zone == Zone.GREEN and missing:
        zone = Zone.UNASSESSED  # no answer is never green
    this = PastReading(id="this-questionnaire", kind=QUESTIONNAIRE, values={}, effective=answers.answered, zone=zone)
    return Assessment(
        zone=zone,
        fired=tuple(fired),
        advice_keys=_advice(f"symptoms.{zone}", plan, fired, zone, control=False),
        **_judged_by(plan),
        next_due=next_due(plan.enrolled, [*history, this], tz, kind=QUESTIONNAIRE).on,
        notes=_form_notes(asked, missing, zone),
        unanswered=missing,
    )


def _form_notes(asked: Sequence[str], missing: Sequence[str], zone: Zone) -> tuple[str, ...]:
    """What a partly answered form was judged on, for the nurse and the page."""
    if not missing or not asked:
        return ()
    judged = [q for q in asked if q not in missing]
    said = f"judged on {len(judged)} of {len(asked)} questions ({', '.join(judged) or 'none'}); not answered: " \
        f"{', '.join(missing)}"
    if zone == Zone.UNASSESSED:
        return (f"{said}: the answers given show no worsening, but an unanswered form cannot be called green",)
    return (f"{said}: {zone} on the answers given; the unanswered ones could make it worse",)


def remembered_answers(record_id: str, answers: Answers, assessment: Assessment) -> PastReading:
    """What history keeps of a judged questionnaire: its time and zone (the schedule counts it), no answers."""
    return PastReading(id=record_id, kind=QUESTIONNAIRE, values={}, effective=answers.answered, zone=assessment.zone)


def remembered(reading_id: str, m: Measurement, effective: datetime, assessment: Assessment) -> PastReading:
    """What history keeps of an assessed reading."""
    return PastReading(
        id=reading_id, kind=m.kind, values={n: q.value for n, q in m.components.items()}, effective=effective,
        zone=assessment.zone, control=bool(assessment.control), unjudged=assessment.unjudged,
    )
