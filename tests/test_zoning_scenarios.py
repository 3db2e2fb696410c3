"""A clinical course per standard profile: stable -> yellow -> red -> recovery, with the zone, the advice
and the next measurement due at each step, as the patient and the nurse would see them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from drivers.measurement import Measurement
from drivers.measurement import MeasurementKind as K
from tests.zoning_support import OSLO, Patient, measurement, plan
from zoning import Answers, Zone, assess_answers

ENROLLED = date(2026, 11, 2)


def morning(day: int) -> datetime:
    """08:30 local time on day `day` after enrolment (day 1 = the enrolment date)."""
    d = ENROLLED + timedelta(days=day - 1)
    return datetime(d.year, d.month, d.day, 8, 30, tzinfo=OSLO).astimezone(UTC)


def day(n: int) -> date:
    return ENROLLED + timedelta(days=n - 1)


def test_copd_stable_then_exacerbation_then_recovery() -> None:
    patient = Patient(plan("standard-copd", enrolled=ENROLLED))

    def spo2(value: int, pulse: int = 72) -> Measurement:
        return measurement(K.SPO2, spo2=value, pulse=pulse)

    for n in range(1, 14):  # start-up: every day, all green
        a = patient.measure(spo2(96 + n % 2), morning(n))
        assert (a.zone, a.next_due) == (Zone.GREEN, day(n + 1)), n
    a = patient.measure(spo2(97), morning(14))
    assert (a.zone, a.next_due) == (Zone.GREEN, day(21))  # 14 daily days done, stable: weekly from now on
    a = patient.measure(spo2(96), morning(21))
    assert (a.zone, a.next_due) == (Zone.GREEN, day(28))

    a = patient.measure(spo2(94, 88), morning(28))  # saturation falling, pulse rising
    assert a.zone == Zone.YELLOW and a.advice_keys == ("spo2.yellow",)
    assert a.next_due == day(29)  # daily while yellow

    a = patient.measure(spo2(93, 96), morning(29))
    assert a.zone == Zone.YELLOW and {f.rule for f in a.fired} == {"spo2.yellow", "spo2.pulse.yellow.high"}
    answers = Answers(answered=morning(29), answers={"breathlessness": "worse", "sputum_colour": "yellow_green"})
    q = assess_answers(answers, history=patient.history, plan=patient.plan, tz=OSLO)
    assert q.zone == Zone.RED and q.advice_keys == ("symptoms.red", "emergency")  # two cardinal symptoms

    a = patient.measure(spo2(90, 104), morning(30))
    assert {"spo2.red", "spo2.fall"} <= {f.rule for f in a.fired}  # 4 points below 94 two days ago
    assert a.zone == Zone.RED and a.advice_keys[0] == "spo2.red" and a.advice_keys[-1] == "emergency"
    assert a.next_due == day(31)

    assert patient.measure(spo2(94, 84), morning(31)).zone == Zone.YELLOW  # recovering: still daily
    a = patient.measure(spo2(96, 76), morning(32))
    assert (a.zone, a.advice_keys, a.next_due) == (Zone.GREEN, ("spo2.green",), day(39))  # green: weekly again


def test_heart_failure_fluid_build_up_then_recovery() -> None:
    patient = Patient(plan("standard-heart-failure", enrolled=ENROLLED))

    def weigh(kg: str) -> Measurement:
        return measurement(K.BODY_WEIGHT, weight=kg)

    def cuff(systolic: int, diastolic: int, pulse: int) -> Measurement:
        return measurement(K.BLOOD_PRESSURE, systolic=systolic, diastolic=diastolic, pulse=pulse)

    a = patient.measure(weigh("82.0"), morning(29))  # the first weighing: no trend to judge yet
    assert a.zone == Zone.UNASSESSED and a.next_due == day(30)
    for n, kg in enumerate(("82.0", "82.2", "81.9", "82.1", "82.0"), start=30):
        a = patient.measure(weigh(kg), morning(n))
        assert a.zone == Zone.GREEN
    assert a.next_due == day(41)  # past the start-up period and green: weekly

    a = patient.measure(weigh("83.2"), morning(35))  # +1.3 kg against the lowest of 3 days (81.9 on day 32)
    assert a.zone == Zone.YELLOW and a.fired[0].rule == "weight.gain.yellow" and a.next_due == day(36)
    a = patient.measure(weigh("84.3"), morning(36))  # +2.3 kg in 3 days (82.0 on day 34)
    assert a.zone == Zone.RED
    assert a.advice_keys == ("body_weight.red", "body_weight.gain", "emergency")  # extra diuretic per the plan
    assert patient.measure(cuff(96, 62, 104), morning(36)).zone == Zone.YELLOW  # low pressure, fast pulse

    a = patient.measure(weigh("83.1"), morning(37))  # the diuretic works, but 3 days ago it was 82.0
    assert a.zone == Zone.YELLOW and a.next_due == day(38)
    a = patient.measure(weigh("82.3"), morning(38))
    assert (a.zone, a.next_due) == (Zone.GREEN, day(45))


def test_copd_on_a_88_to_92_target_is_not_red_at_89() -> None:
    patient = Patient(plan("standard-copd-scale2", enrolled=ENROLLED))
    course = [(20, 90, Zone.GREEN), (21, 89, Zone.GREEN), (22, 86, Zone.YELLOW), (23, 83, Zone.RED),
              (24, 87, Zone.YELLOW), (25, 89, Zone.GREEN)]
    for n, value, zone in course:
        a = patient.measure(measurement(K.SPO2, spo2=value, pulse=75), morning(n))
        assert a.zone == zone, (n, value)
        assert ("emergency" in a.advice_keys) is (zone == Zone.RED)
    assert a.next_due == day(32)

