"""The patient's page as data (gateway/web/view.py): what it says on red, on a control measurement,
on an overdue day, and in which language. Pure: no server, no browser."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.web.live import Latest
from gateway.web.view import number, patient_view
from zoning import PastReading, Zone, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PLAN = standard_plan(load_profile("standard-copd"), load_advice(), date(2026, 1, 1))


def latest(kind: str, zone: Zone, at: datetime, values: dict[str, str], control: tuple[str, ...] = ()) -> Latest:
    keys = (f"{kind}.{zone}", *(("emergency",) if zone == Zone.RED else ()))
    return Latest(kind, zone, tuple((n, Decimal(v), "") for n, v in values.items()), (), at, keys, control)


def past(kind: MeasurementKind, zone: Zone, at: datetime) -> PastReading:
    return PastReading(id=f"{kind}-{at.isoformat()}", kind=kind, values={"spo2": Decimal(90)}, effective=at, zone=zone)


def test_a_red_earlier_today_keeps_the_notice_after_a_green_of_the_same_measurement() -> None:
    red_at, green_at = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    history = [past(MeasurementKind.SPO2, Zone.RED, red_at), past(MeasurementKind.SPO2, Zone.GREEN, green_at)]
    view = patient_view(latest={"spo2": latest("spo2", Zone.GREEN, green_at, {"spo2": "97", "pulse": "70"})},
                        version=3, plan=PLAN, history=history, waiting=[], tz=OSLO, now=NOW, language="en")
    assert view.emergency is not None and "113" in view.emergency and "116 117" in view.emergency
    # The next day a green is just green.
    tomorrow = patient_view(latest={"spo2": latest("spo2", Zone.GREEN, green_at, {"spo2": "97"})}, version=3,
                            plan=PLAN, history=history, waiting=[], tz=OSLO, now=NOW + timedelta(days=1),
                            language="en")
    assert tomorrow.emergency is None


def test_cards_worst_first_with_the_zone_word_values_and_the_plans_advice_in_bokmaal() -> None:
    view = patient_view(latest={
        "body_temperature": latest("body_temperature", Zone.GREEN, NOW, {"temperature": "36.80"}),
        "spo2": latest("spo2", Zone.RED, NOW, {"spo2": "88", "pulse": "90"}),
    }, version=1, plan=PLAN, history=[], waiting=[], tz=OSLO, now=NOW, language="nb")
    assert [(c.kind, c.zone_word) for c in view.cards] == [("spo2", "RØD"), ("body_temperature", "GRØNN")]
    assert view.cards[0].values == "88 %, puls 90/min" and view.cards[1].values == "36,8 °C"
    assert view.cards[0].advice == [PLAN.advice.text("spo2.red", "nb")]
    assert view.cards[0].at_text == "i dag kl. 10:00"
    assert view.emergency == PLAN.advice.text("emergency", "nb")
    assert [q.id for q in view.questionnaire][:2] == ["breathlessness", "cough"]


def test_measure_again_says_why() -> None:
    card = latest("spo2", Zone.YELLOW, NOW, {"spo2": "93"}, control=("jump: spo2 93 against a 7-day median of 97",))
    view = patient_view(latest={"spo2": card}, version=1, plan=PLAN, history=[], waiting=[], tz=OSLO, now=NOW,
                        language="en")
    [again] = [c.measure_again for c in view.cards]
    assert again[0] == PLAN.advice.text("control.repeat", "en")
    assert again[1] == "The value is very different from your recent ones (spo2 93 against a 7-day median of 97)"


def test_due_and_overdue_today() -> None:
    last = NOW - timedelta(days=3)
    history = [past(MeasurementKind.SPO2, Zone.YELLOW, last)]
    view = patient_view(latest={}, version=0, plan=PLAN, history=history, waiting=[], tz=OSLO, now=NOW, language="en")
    assert view.schedule.overdue_days == 2 and "2 day(s) overdue" in view.schedule.due_text
    assert "Oxygen saturation" in view.schedule.not_measured_today
    today = [past(MeasurementKind.SPO2, Zone.GREEN, NOW - timedelta(hours=1))]
    view = patient_view(latest={}, version=0, plan=PLAN, history=today, waiting=[], tz=OSLO, now=NOW, language="nb")
    assert view.schedule.overdue_days == 0 and view.schedule.measured_today == ["Oksygenmetning"]


def test_numbers_are_written_as_the_reader_writes_them() -> None:
    assert number(Decimal("80.400"), "nb") == "80,4" and number(Decimal("80.400"), "en") == "80.4"
    assert number(Decimal("120"), "nb") == "120" and number(Decimal("1E+2"), "en") == "100"
