"""The safety envelope: where a reading is always red, whatever the plan says (docs/zoning.md, "Safety envelope").

A table of limits at the extremes where no individual plan makes clinical sense, each with its source
(shared/reference/thresholds.md). It works in two places:

1. judging: a reading beyond a line is red even when the plan has no rule for it, or its own rules would
   call it something milder (`envelope_fired`);
2. checking a plan: no rule may reach beyond a line (a red bound further out than the envelope, a yellow
   band inside the always-red band), a red rule the envelope covers cannot be switched off, the bands must
   be ordered (red beyond yellow beyond green), and every limit must be plausible in its unit (`plan_problems`).

The table is shipped with the code and pinned by its content hash (gateway/plans/standard.py
`ENVELOPE_PIN`): changing a line means renewing that pin deliberately, with the reason in the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from drivers.measurement import MeasurementKind
from zoning import rules
from zoning.history import PastReading
from zoning.models import Comparison, ConsecutiveRule, FiredRule, Profile, ThresholdRule, TrendRule, Zone
from zoning.resolution import band_step

K = MeasurementKind
_NEWS2 = "NEWS2 (RCP 2017)"


def _line(rule_id: str, kind: MeasurementKind, component: str, op: Comparison, limit: int,
          source: str) -> ThresholdRule:
    return ThresholdRule(id=rule_id, kind=kind, component=component, op=op, limit=Decimal(limit), zone=Zone.RED,
                         source=source)


_SPO2 = (f"{_NEWS2}: SpO2 scale 2 <= 83 scores 3; scale 2 is already the scale for CO2 retainers (target 88-92 %, "
         "BTS 2017), so no published scale calls 83 % anything milder")
_PULSE_LOW = f"{_NEWS2}: pulse <= 40 scores 3"
_PULSE_HIGH = f"{_NEWS2}: pulse >= 131 scores 3"
_SYSTOLIC_HIGH = f"{_NEWS2}: systolic >= 220 scores 3"
_SYSTOLIC_LOW = (f"design choice on {_NEWS2} systolic <= 90 scores 3 and ESC 2021 symptomatic hypotension < 90: "
                 "10 mmHg below both, so a heart-failure patient who lives at 85-95 mmHg on their medicines can "
                 "still be given a lower red bound, but not one below 80")
_WEIGHT = ("design choice on ESC 2021 (> 2 kg in 3 days: act): 1 kg beyond it, room for a patient with a wide "
           "day-to-day variation; the same limit in pounds (4.4) lies beyond it")

# The envelope. Threshold lines are red rules of their own; the weight line is a red trend with the
# semantics of every trend rule (a window of local days, the look-back across missed days).
ENVELOPE = Profile(
    id="safety-envelope",
    version=1,
    title="Safety envelope: always red, whatever the plan says",
    note="Limits no plan can cross; see docs/zoning.md and shared/reference/thresholds.md.",
    rules=(
        _line("envelope.spo2.low", K.SPO2, "spo2", "<=", 83, _SPO2),
        _line("envelope.spo2.pulse.low", K.SPO2, "pulse", "<=", 40, _PULSE_LOW),
        _line("envelope.spo2.pulse.high", K.SPO2, "pulse", ">=", 131, _PULSE_HIGH),
        _line("envelope.bp.systolic.low", K.BLOOD_PRESSURE, "systolic", "<=", 80, _SYSTOLIC_LOW),
        _line("envelope.bp.systolic.high", K.BLOOD_PRESSURE, "systolic", ">=", 220, _SYSTOLIC_HIGH),
        _line("envelope.bp.pulse.low", K.BLOOD_PRESSURE, "pulse", "<=", 40, _PULSE_LOW),
        _line("envelope.bp.pulse.high", K.BLOOD_PRESSURE, "pulse", ">=", 131, _PULSE_HIGH),
    ),
    trends=(
        TrendRule(id="envelope.weight.gain", kind=K.BODY_WEIGHT, component="weight", change="rise", op=">",
                  amount=Decimal(3), days=3, zone=Zone.RED, source=_WEIGHT),
    ),
)

# Where a limit can lie at all, per component in its unit (the drivers' unit): a value outside is a typo or
# a unit mix-up, refused before it can judge anyone. Each with what such a value most likely is.
Range = tuple[Decimal, Decimal, str, str]  # low, high, unit, the likely mix-up
PLAUSIBLE: dict[str, Range] = {
    "spo2": (Decimal(50), Decimal(100), "%", "a typo?"),
    "pulse": (Decimal(20), Decimal(250), "/min", "a typo?"),
    "systolic": (Decimal(50), Decimal(300), "mmHg", "kPa? 1 kPa = 7.5 mmHg"),
    "diastolic": (Decimal(20), Decimal(200), "mmHg", "kPa? 1 kPa = 7.5 mmHg"),
    "mean": (Decimal(30), Decimal(250), "mmHg", "kPa? 1 kPa = 7.5 mmHg"),
    "weight": (Decimal(20), Decimal(400), "kg", "pounds? 1 kg = 2.2 lb"),
    "temperature": (Decimal(30), Decimal(45), "°C", "°F? 38 °C = 100.4 °F"),
    "glucose": (Decimal(1), Decimal(35), "mmol/L", "mg/dL? 1 mmol/L = 18 mg/dL"),
}
# A trend's amount (a change, not a level): weight gains are ordered in kilograms over days, SpO2 falls in points.
PLAUSIBLE_CHANGE: dict[str, Range] = {
    "weight": (Decimal("0.2"), Decimal(4), "kg", "pounds? 1 kg = 2.2 lb"),
    "spo2": (Decimal(1), Decimal(15), "points", "a typo?"),
    "pulse": (Decimal(5), Decimal(60), "/min", "a typo?"),
    "systolic": (Decimal(5), Decimal(80), "mmHg", "kPa? 1 kPa = 7.5 mmHg"),
}

Direction = Literal["low", "high"]
_Banded = ThresholdRule | ConsecutiveRule


def direction(op: Comparison) -> Direction:
    """Which way a rule's band reaches: `low` for `<`/`<=`, `high` for `>`/`>=`."""
    return "low" if op in ("<", "<=") else "high"


def _edge(kind: MeasurementKind, component: str, op: Comparison, limit: Decimal) -> Decimal:
    """The mildest value in the band at the band's step: `<= 91` -> 91, `< 60` -> 59, `> 160` -> 161."""
    step = band_step(kind, component, limit)
    return {"<=": limit, "<": limit - step, ">=": limit, ">": limit + step}[op]


def _beyond(a: Decimal, b: Decimal, way: Direction) -> bool:
    """Whether edge `a` lies further out than edge `b` in direction `way` (lower for low, higher for high)."""
    return a < b if way == "low" else a > b


def _say(rule: ThresholdRule | ConsecutiveRule | TrendRule) -> str:
    """A rule as a refusal names it: `spo2.red (<= 80 %)`, `weight.gain.red (rise > 4.4 kg in 3 days)`."""
    unit = PLAUSIBLE[rule.component][2] if rule.component in PLAUSIBLE else ""
    if isinstance(rule, TrendRule):
        words = [rule.change, rule.op, f"{rule.amount.normalize():f}", unit, f"in {rule.days} days"]
    else:
        words = [rule.op, f"{rule.limit.normalize():f}", unit]
        if isinstance(rule, ConsecutiveRule):
            words.append(f"{rule.count} times in a row")
    return f"{rule.id} ({' '.join(w for w in words if w)})"


def plausible(rule: ThresholdRule | TrendRule | ConsecutiveRule, value: Decimal) -> str | None:
    """Why `value` cannot be this rule's limit (or a trend's amount) in its unit, or None when it can."""
    table = PLAUSIBLE_CHANGE if isinstance(rule, TrendRule) else PLAUSIBLE
    if rule.component not in table:
        return None
    low, high, unit, hint = table[rule.component]
    if low <= value <= high:
        return None
    what = "a change of " if isinstance(rule, TrendRule) else ""
    return (f"override of {rule.id}: {what}{value.normalize():f} is outside the plausible range {low} to {high} "
            f"{unit} for {rule.component} ({hint})")


def _ordered(profile: Profile) -> list[str]:
    """Red beyond yellow beyond green, per component and direction; and some green left between the directions."""
    problems = []
    groups: dict[tuple[str, str], list[ThresholdRule]] = {}
    for r in profile.rules:
        groups.setdefault((r.kind, r.component), []).append(r)
    for (kind, component), group in groups.items():
        edges = {r.id: _edge(r.kind, component, r.op, r.limit) for r in group}
        ways: tuple[Direction, ...] = ("low", "high")
        for way in ways:
            side = [r for r in group if direction(r.op) == way]
            for red in (r for r in side if r.zone == Zone.RED):
                for yellow in (r for r in side if r.zone == Zone.YELLOW):
                    if not _beyond(edges[red.id], edges[yellow.id], way):
                        problems.append(f"bands out of order: {_say(yellow)} is not inside {_say(red)}: red must "
                                        "lie beyond yellow, and yellow beyond green")
        lows = [r for r in group if direction(r.op) == "low"]
        highs = [r for r in group if direction(r.op) == "high"]
        if lows and highs:
            low = max(lows, key=lambda r: edges[r.id])
            high = min(highs, key=lambda r: edges[r.id])
            step = min(band_step(low.kind, component, low.limit), band_step(high.kind, component, high.limit))
            if edges[high.id] - edges[low.id] <= step:
                problems.append(f"no green left for {kind} {component}: {_say(low)} meets {_say(high)}")
    problems += _trends_ordered(profile.trends)
    return problems


def _trends_ordered(trends: Sequence[TrendRule]) -> list[str]:
    problems = []
    for red in (t for t in trends if t.zone == Zone.RED):
        for yellow in (t for t in trends if t.zone == Zone.YELLOW):
            same = (yellow.kind, yellow.component, yellow.change, yellow.days) == (red.kind, red.component,
                                                                                  red.change, red.days)
            if same and _edge(red.kind, red.component, red.op, red.amount) <= _edge(
                    yellow.kind, yellow.component, yellow.op, yellow.amount):
                problems.append(f"bands out of order: {_say(yellow)} is not inside {_say(red)}: red must lie "
                                "beyond yellow")
    return problems


def _cite(line: ThresholdRule | TrendRule) -> str:
    return "NEWS2 score 3" if line.source.startswith(_NEWS2) else "design choice, docs/zoning.md"


def _covers(line: ThresholdRule, rule: _Banded) -> bool:
    return (rule.kind, rule.component, direction(rule.op)) == (line.kind, line.component, direction(line.op))


def _threshold_lines(profile: Profile) -> list[str]:
    problems = []
    for line in ENVELOPE.rules:
        way = direction(line.op)
        limit = _edge(line.kind, line.component, line.op, line.limit)
        envelope = f"{line.component} {line.op} {line.limit} is always red ({line.id}, {_cite(line)})"
        banded: list[_Banded] = [*profile.rules, *profile.consecutive]
        for rule in banded:
            if not _covers(line, rule):
                continue
            edge = _edge(rule.kind, rule.component, rule.op, rule.limit)
            if isinstance(rule, ThresholdRule) and rule.zone == Zone.RED:
                if _beyond(edge, limit, way):
                    problems.append(f"{_say(rule)} is beyond the safety envelope: {envelope}; a red bound can "
                                    f"reach no further out than {line.op} {line.limit}")
            elif not _beyond(edge, limit, "high" if way == "low" else "low"):
                problems.append(f"{_say(rule)} is beyond the safety envelope: {envelope}, so this {rule.zone} "
                                "band could never show")
    return problems


def _trend_lines(profile: Profile) -> list[str]:
    problems = []
    for line in ENVELOPE.trends:
        limit = _edge(line.kind, line.component, line.op, line.amount)
        unit = PLAUSIBLE[line.component][2]
        envelope = (f"a {line.change} of {line.op} {line.amount} {unit} in {line.days} days is always red ({line.id}, "
                    f"{_cite(line)})")
        for rule in profile.trends:
            if (rule.kind, rule.component, rule.change) != (line.kind, line.component, line.change):
                continue
            if rule.days > line.days:
                continue  # a slower rule over a longer window is not comparable
            edge = _edge(rule.kind, rule.component, rule.op, rule.amount)
            if edge > limit or (rule.zone != Zone.RED and edge == limit):
                problems.append(f"{_say(rule)} is beyond the safety envelope: {envelope}")
    return problems


def _switched_off(base: Profile, effective: Profile) -> list[str]:
    """A red rule the envelope covers, present in the standard profile and switched off by the plan."""
    kept = {r.id for r in (*effective.rules, *effective.trends)}
    problems = []
    for rule in base.rules:
        line = next((e for e in ENVELOPE.rules if _covers(e, rule)), None)
        if rule.zone == Zone.RED and rule.id not in kept and line is not None:
            problems.append(f"{rule.id} cannot be switched off: the safety envelope keeps {line.component} "
                            f"{line.op} {line.limit} red ({line.id}); give it a limit instead, no further out "
                            f"than {line.op} {line.limit}")
    for trend in base.trends:
        covered = any((e.kind, e.component, e.change) == (trend.kind, trend.component, trend.change)
                      for e in ENVELOPE.trends)
        if trend.zone == Zone.RED and trend.id not in kept and covered:
            problems.append(f"{trend.id} cannot be switched off: the safety envelope covers it; give it an amount "
                            "instead")
    return problems


def plan_problems(base: Profile, effective: Profile) -> list[str]:
    """Everything that stops a plan: rules switched off or moved beyond the safety envelope, unordered bands.

    `base` is the standard profile the plan starts from, `effective` the rules after the doctor's overrides.
    Each problem is one line naming the rule. Empty for a plan that may judge a patient.
    """
    return [*_switched_off(base, effective), *_threshold_lines(effective), *_trend_lines(effective),
            *_ordered(effective)]


def envelope_fired(kind: MeasurementKind, values: dict[str, Decimal], effective: datetime,
                   history: Sequence[PastReading], tz: ZoneInfo) -> tuple[list[FiredRule], list[str]]:
    """The envelope lines this reading is beyond (each makes it red), and the notes of a trend line that fired."""
    trend = rules.trends(ENVELOPE, kind, values, effective, history, tz)
    return [*rules.thresholds(ENVELOPE, kind, values), *trend.fired], (trend.notes if trend.fired else [])


def lines() -> Iterable[ThresholdRule | TrendRule]:
    """Every line of the envelope, thresholds first (for documentation and tests)."""
    return (*ENVELOPE.rules, *ENVELOPE.trends)
