"""The patient's page as data: what the template renders and the JSON API returns. Pure: state,
plan, language and the time in; a view model out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from gateway.readings import Unassigned
from gateway.web.live import Latest
from gateway.web.texts import ANSWERS, KIND_NAMES, QUESTIONS, ZONE_WORDS, control_reason, pick, ui
from zoning import (
    CONTROL_ADVICE,
    EMERGENCY,
    SEVERITY,
    Language,
    PastReading,
    Plan,
    Zone,
    days_overdue,
    local_date,
    next_due,
)


class CardView(BaseModel):
    kind: str
    kind_name: str
    zone: str
    zone_word: str
    values: str
    at: datetime
    at_text: str
    advice: list[str]
    measure_again: list[str] = []  # why, when the engine asks for a control measurement


class UnassignedView(BaseModel):
    id: str
    text: str  # "82,4 kg kl. 08:12"


class ChoiceView(BaseModel):
    value: str
    label: str


class QuestionView(BaseModel):
    id: str
    label: str
    choices: list[ChoiceView]


class ScheduleView(BaseModel):
    due_on: date
    due_text: str
    overdue_days: int
    measured_today: list[str]
    not_measured_today: list[str]


class PatientView(BaseModel):
    language: Language
    version: int
    emergency: str | None  # shown above everything while any latest reading is red
    cards: list[CardView]
    schedule: ScheduleView
    unassigned: list[UnassignedView]
    questionnaire: list[QuestionView]  # empty when the plan has no symptom questions


def number(value: Decimal, language: Language) -> str:
    text = format(value.normalize(), "f")  # 80.400 (a scale's 0.005 kg steps) is shown as 80.4
    return text.replace(".", ",") if language == "nb" else text


def values_text(kind: str, values: Sequence[tuple[str, Decimal, str]], language: Language) -> str:
    v = {name: number(value, language) for name, value, _unit in values}
    pulse = f", {'puls' if language == 'nb' else 'pulse'} {v['pulse']}/min" if "pulse" in v else ""
    match kind:
        case "blood_pressure":
            return f"{v.get('systolic', '?')}/{v.get('diastolic', '?')} mmHg{pulse}"
        case "spo2":
            return f"{v.get('spo2', '?')} %{pulse}"
        case "body_weight":
            return f"{v.get('weight', '?')} kg"
        case "body_temperature":
            return f"{v.get('temperature', '?')} °C"
        case "glucose":
            return f"{v.get('glucose', '?')} mmol/L"
    return ", ".join(f"{name} {text}" for name, text in v.items())


def time_text(when: datetime, tz: ZoneInfo, today: date, language: Language) -> str:
    local = when.astimezone(tz)
    clock = f"{local:%H:%M}"
    if local.date() == today:
        return f"{ui('today', language)} {ui('at', language)} {clock}"
    day = f"{local.day}.{local.month}." if language == "nb" else f"{local:%d %b}"
    return f"{day} {ui('at', language)} {clock}"


def _card(latest: Latest, plan: Plan, tz: ZoneInfo, today: date, language: Language) -> CardView:
    if latest.kind == "questionnaire" and not latest.answers:
        # Restored after a restart: history keeps the form's zone and time, not its answers; never claim
        # "as usual" beside a red.
        values = ui("answers_saved", language)
    elif latest.kind == "questionnaire":
        values = ", ".join(pick(ANSWERS[q][a], language) if q in ANSWERS and a in ANSWERS[q] else a
                           for q, a in latest.answers if a not in ("usual", "normal", "clear"))
        values = values or pick(ANSWERS["breathlessness"]["usual"], language)
    else:
        values = values_text(latest.kind, latest.values, language)
    advice = [plan.advice.text(k, language) for k in latest.advice_keys
              if k not in (EMERGENCY, CONTROL_ADVICE) and k in plan.advice.texts]
    again = []
    if latest.control:
        again = [plan.advice.text(CONTROL_ADVICE, language),
                 *(control_reason(r, language) for r in latest.control if r)]
    return CardView(
        kind=latest.kind, kind_name=pick(KIND_NAMES.get(latest.kind, (latest.kind, latest.kind)), language),
        zone=latest.zone.value, zone_word=pick(ZONE_WORDS[latest.zone.value], language), values=values,
        at=latest.at, at_text=time_text(latest.at, tz, today, language), advice=advice, measure_again=again)


def schedule(plan: Plan, history: Sequence[PastReading], tz: ZoneInfo, today: date,
             language: Language) -> ScheduleView:
    due = next_due(plan.enrolled, history, tz)
    late = days_overdue(due, today)
    if late:
        text = ui("overdue", language).format(n=late)
    elif due.on <= today:
        text = ui("due_today", language)
    else:
        text = f"{ui('due_on', language)} {due.on.day}.{due.on.month}." if language == "nb" else \
            f"{ui('due_on', language)} {due.on:%d %B}"
    done = {p.kind.value for p in history if local_date(p.effective, tz) == today}
    kinds = sorted(k.value for k in plan.rules.kinds)
    name = {k: pick(KIND_NAMES[k], language) for k in kinds}
    return ScheduleView(due_on=due.on, due_text=text, overdue_days=late,
                        measured_today=[name[k] for k in kinds if k in done],
                        not_measured_today=[name[k] for k in kinds if k not in done])


def questionnaire(plan: Plan, language: Language) -> list[QuestionView]:
    if not plan.rules.symptoms:
        return []
    return [QuestionView(id=q, label=pick(label, language),
                         choices=[ChoiceView(value=a, label=pick(text, language)) for a, text in ANSWERS[q].items()])
            for q, label in QUESTIONS.items()]


def unassigned_text(item: Unassigned, tz: ZoneInfo, language: Language) -> str:
    when = item.measurement.device_time or item.received.astimezone(tz).replace(tzinfo=None)
    values = values_text(item.measurement.kind.value,
                         [(n, q.value, q.unit) for n, q in item.measurement.components.items()], language)
    return f"{values} {ui('at', language)} {when:%H:%M}"


def patient_view(*, latest: dict[str, Latest], version: int, plan: Plan, history: Sequence[PastReading],
                 waiting: Sequence[Unassigned], tz: ZoneInfo, now: datetime, language: Language) -> PatientView:
    today = now.astimezone(tz).date()
    cards = sorted((_card(item, plan, tz, today, language) for item in latest.values()),
                   key=lambda c: (-SEVERITY[Zone(c.zone)], c.kind_name))
    # A red stays on the page all day, whatever is measured after it: the notice is never hidden by a
    # later green, of another measurement or of the same one.
    red = any(c.zone == Zone.RED for c in cards) or any(
        p.zone == Zone.RED and local_date(p.effective, tz) == today for p in history)
    return PatientView(
        language=language, version=version,
        emergency=plan.advice.text(EMERGENCY, language) if red else None,
        cards=cards,
        schedule=schedule(plan, history, tz, today, language),
        unassigned=[UnassignedView(id=w.id, text=unassigned_text(w, tz, language)) for w in waiting],
        questionnaire=questionnaire(plan, language),
    )
