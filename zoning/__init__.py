"""Traffic-light zoning: pure functions of measurements and the patient's plan. No I/O, no clock.

What it offers (other packages import these names from `zoning`, never from its modules):

- models: `Zone`, `Profile` and its rules (`ThresholdRule`, `TrendRule`, `ConsecutiveRule`, `SymptomRule`),
  `Assessment`, `SEVERITY`;
- the patient's plan: `Plan`, `PlanDocument`, `PlanSchedule`, `Override`, `standard_plan`,
  `plan_from_document`, `CONTROL_ADVICE`;
- judging: `assess_reading`, `assess_answers`, `remembered` (a reading as history), `thresholds` and
  `symptoms` (single rule families), `band_step`;
- history and schedule: `PastReading`, `LOOKBACK`, `AT_LEAST`, `local_date`, `next_due`, `overdue`,
  `days_overdue`;
- advice texts: `AdviceBook`, `AdviceText`, `EMERGENCY`, `Language`;
- questionnaires: `Answers`, `QUESTIONS`, `QUESTIONNAIRE` (its `Form` kind in history), `remembered_answers`;
  baseline proposals: `propose_baseline`, `BASELINE_DAYS`;
- the safety envelope no plan can cross: `ENVELOPE` (red beyond it, whatever the plan says), `PLAUSIBLE`
  and `PLAUSIBLE_CHANGE` (where a limit can lie in its unit).
"""

from zoning.advice import EMERGENCY, AdviceBook, AdviceText, Language
from zoning.baseline import BASELINE_DAYS, propose_baseline
from zoning.engine import assess_answers, assess_reading, remembered, remembered_answers
from zoning.envelope import ENVELOPE, PLAUSIBLE, PLAUSIBLE_CHANGE
from zoning.history import AT_LEAST, LOOKBACK, PastReading, local_date
from zoning.models import (
    SEVERITY,
    Assessment,
    ConsecutiveRule,
    Profile,
    SymptomRule,
    ThresholdRule,
    TrendRule,
    Zone,
)
from zoning.plan import CONTROL_ADVICE, Override, Plan, PlanDocument, PlanSchedule, plan_from_document, standard_plan
from zoning.questionnaire import QUESTIONNAIRE, QUESTIONS, Answers, Form
from zoning.resolution import band_step
from zoning.rules import symptoms, thresholds
from zoning.schedule import days_overdue, next_due, overdue

__all__ = [
    "AT_LEAST",
    "BASELINE_DAYS",
    "CONTROL_ADVICE",
    "EMERGENCY",
    "ENVELOPE",
    "LOOKBACK",
    "PLAUSIBLE",
    "PLAUSIBLE_CHANGE",
    "QUESTIONNAIRE",
    "QUESTIONS",
    "SEVERITY",
    "AdviceBook",
    "AdviceText",
    "Answers",
    "Assessment",
    "ConsecutiveRule",
    "Form",
    "Language",
    "Override",
    "PastReading",
    "Plan",
    "PlanDocument",
    "PlanSchedule",
    "Profile",
    "SymptomRule",
    "ThresholdRule",
    "TrendRule",
    "Zone",
    "assess_answers",
    "assess_reading",
    "band_step",
    "days_overdue",
    "local_date",
    "next_due",
    "overdue",
    "plan_from_document",
    "propose_baseline",
    "remembered",
    "remembered_answers",
    "standard_plan",
    "symptoms",
    "thresholds",
]
