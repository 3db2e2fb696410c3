"""The safety envelope (issue 18.3): beyond it a reading is red whatever the plan says, and no plan can cross it.

The expected lines are written here from the sources (shared/reference/thresholds.md), not from
zoning/envelope.py: NEWS2 score 3 for SpO2 (scale 2), pulse and high systolic; the design choices for
low systolic and the weight gain as docs/zoning.md gives them.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from central.cli import main
from central.plans import AuditEntry, SqliteAuditLog, unsigned
from drivers.blood_pressure import decode_blood_pressure
from drivers.measurement import MeasurementKind as K
from gateway.plans import (
    ENVELOPE_PIN,
    Accepted,
    InForce,
    PlanRejected,
    check_envelope,
    load_profile,
    shipped_profiles,
    unmeasured_faults,
    unmeasured_kinds,
    verify_config,
)
from gateway.settings import ConfigError
from hardware_sims import encoding
from tests.plan_support import BINDING, NOW, ORDER, Tenant, document, message, signed
from tests.zoning_support import ADVICE, T0, Patient, assess, measurement, plan
from zoning import ENVELOPE, Override, Plan, Profile, ThresholdRule, Zone, plan_from_document, standard_plan

# (kind, component, op) -> limit: always red. From the sources, not from the code.
FROM_THE_SOURCES = {
    (K.SPO2, "spo2", "<="): Decimal(83),  # NEWS2 SpO2 scale 2 <= 83 scores 3
    (K.SPO2, "pulse", "<="): Decimal(40),  # NEWS2 pulse <= 40 scores 3
    (K.SPO2, "pulse", ">="): Decimal(131),  # NEWS2 pulse >= 131 scores 3
    (K.BLOOD_PRESSURE, "pulse", "<="): Decimal(40),
    (K.BLOOD_PRESSURE, "pulse", ">="): Decimal(131),
    (K.BLOOD_PRESSURE, "systolic", ">="): Decimal(220),  # NEWS2 systolic >= 220 scores 3
    (K.BLOOD_PRESSURE, "systolic", "<="): Decimal(80),  # design choice: 10 below NEWS2 <= 90 and ESC < 90
}
NOTHING = standard_plan(Profile(id="no-rules", version=1, title="a plan that judges nothing"), ADVICE,
                        date(2026, 1, 1))
OTHER = {"spo2": {"spo2": 97, "pulse": 70}, "blood_pressure": {"systolic": 120, "diastolic": 80, "pulse": 70}}


def test_the_envelope_is_what_the_sources_say_and_pinned() -> None:
    assert {(r.kind, r.component, r.op): r.limit for r in ENVELOPE.rules} == FROM_THE_SOURCES
    assert all(r.zone == Zone.RED and r.source for r in (*ENVELOPE.rules, *ENVELOPE.trends))
    [weight] = ENVELOPE.trends
    assert (weight.kind, weight.change, weight.op, weight.amount, weight.days) == (K.BODY_WEIGHT, "rise", ">",
                                                                                  Decimal(3), 3)
    assert ENVELOPE.content_hash() == ENVELOPE_PIN
    check_envelope()
    moved = ENVELOPE.model_copy(update={"rules": (ENVELOPE.rules[0].model_copy(update={"limit": Decimal(80)}),
                                                  *ENVELOPE.rules[1:])})
    with pytest.raises(ConfigError, match="safety envelope does not match the hash pinned"):
        check_envelope(moved)


def _points(line: ThresholdRule) -> list[tuple[str, Decimal, bool]]:
    """Just inside, on, just beyond, and between the whole-number steps on either side of the line."""
    toward_green = Decimal(1) if line.op in ("<", "<=") else Decimal(-1)
    edge = line.limit
    return [("just inside", edge + toward_green, False), ("on", edge, True), ("just beyond", edge - toward_green, True),
            ("a fraction inside", edge + toward_green / 2, True),  # between the steps: the alert side
            ("a tenth inside", edge + toward_green * Decimal("0.1"), True),
            ("two steps inside", edge + 2 * toward_green, False)]


@pytest.mark.parametrize("line", ENVELOPE.rules, ids=[r.id for r in ENVELOPE.rules])
def test_every_envelope_line_at_its_boundary_under_a_plan_that_judges_nothing(line: ThresholdRule) -> None:
    for where, value, red in _points(line):
        values = {**OTHER[line.kind], line.component: value}
        a = assess(measurement(line.kind, **values), NOTHING)
        assert a.zone == (Zone.RED if red else Zone.UNASSESSED), (line.id, where, value)
        assert (line.id in {f.rule for f in a.fired}) is red
        if red:
            assert "emergency" in a.advice_keys


@pytest.mark.parametrize(("kpa", "red"), [
    ("29.3", True),  # 219.8 mmHg: at the >= 220 line's resolution, red
    ("29.1", False),  # 218.3 mmHg
    ("10.7", True),  # 80.3 mmHg: at the <= 80 line's resolution, red
    ("10.9", False),  # 81.8 mmHg
])
def test_a_kpa_cuff_at_the_systolic_lines_through_the_real_decoder(kpa: str, red: bool) -> None:
    data = bytes([0x01]) + encoding.sfloat(Decimal(kpa), -1) + encoding.sfloat(Decimal("8.0"), -1) + encoding.sfloat(
        Decimal("9.0"), -1)
    m = decode_blood_pressure(data)
    a = assess(m, NOTHING)
    assert a.zone == (Zone.RED if red else Zone.UNASSESSED), m.components["systolic"].value


def _kept(profile: str, *overrides: Override) -> Plan:
    """A plan applied by an earlier release, crossing today's envelope: kept, its problems reported."""
    doc = document(2, spo2_red=None, profile=profile, overrides=overrides)
    return plan_from_document(doc, load_profile(profile), ADVICE, "sha256:" + "2" * 64, kept=True)


def _off(rule: str) -> Override:
    return Override(rule=rule, off=True, reason=ORDER)


def _set(rule: str, limit: str) -> Override:
    return Override(rule=rule, limit=Decimal(limit), reason=ORDER)


def test_the_reviewers_saturations_are_red_whatever_the_plan_says() -> None:
    """Issue 18.3: spo2.red off and yellow at <= 50 made SpO2 80 and 55 green."""
    crossing = _kept("standard-copd", _off("spo2.red"), _set("spo2.yellow", "50"), _off("spo2.persistent"))
    assert any("spo2.red cannot be switched off" in p for p in crossing.problems)
    for spo2 in (80, 55, 83):
        a = assess(measurement(K.SPO2, spo2=spo2, pulse=70), crossing)
        assert a.zone == Zone.RED and [f.rule for f in a.fired] == ["envelope.spo2.low"], spo2
    assert assess(measurement(K.SPO2, spo2=84, pulse=70), crossing).zone == Zone.GREEN  # what that plan says


def test_the_reviewers_systolics_are_red_whatever_the_plan_says() -> None:
    """Issue 18.3: the systolic highs at 300 or off made 220 and 260 green."""
    moved = _kept("standard-copd", _set("bp.systolic.red.high", "300"), _set("bp.systolic.yellow.high", "300"))
    off = _kept("standard-copd", _off("bp.systolic.red.high"), _off("bp.systolic.yellow.high"))
    for crossing in (moved, off):
        assert crossing.problems
        for systolic in (220, 260):
            a = assess(measurement(K.BLOOD_PRESSURE, systolic=systolic, diastolic=80, pulse=70), crossing)
            assert a.zone == Zone.RED and "envelope.bp.systolic.high" in {f.rule for f in a.fired}


def test_an_oximeter_reading_under_a_heart_failure_plan_is_red_beyond_the_envelope_and_never_green() -> None:
    hf = plan("standard-heart-failure")
    assert assess(measurement(K.SPO2, spo2=80, pulse=70), hf).zone == Zone.RED
    assert assess(measurement(K.SPO2, spo2=96, pulse=140), hf).zone == Zone.RED
    assert assess(measurement(K.SPO2, spo2=95, pulse=70), hf).zone == Zone.UNASSESSED


def test_a_plans_own_red_is_named_and_the_envelope_only_where_it_changes_the_zone() -> None:
    a = assess(measurement(K.SPO2, spo2=80, pulse=70), plan("standard-copd"))
    assert a.zone == Zone.RED and "envelope.spo2.low" not in {f.rule for f in a.fired}


@pytest.mark.parametrize(("weight", "zone"), [
    ("83.0", Zone.YELLOW),  # +3.0 kg: the plan's yellow (> 1); the envelope's > 3 does not fire
    ("83.1", Zone.RED),  # +3.1 kg: beyond the envelope, though the plan switched its red off
    ("83.05", Zone.RED),  # +3.05 kg: between the 0.1 kg steps, the alert side
    (str(Decimal("183.2") * Decimal("0.45359237")), Zone.RED),  # a pounds scale: 183.2 lb = 83.098 kg
])
def test_the_weight_line_at_its_boundary(weight: str, zone: Zone) -> None:
    crossing = _kept("standard-heart-failure", _off("weight.gain.red"))
    assert any("weight.gain.red cannot be switched off" in p for p in crossing.problems)
    patient = Patient(crossing)
    patient.measure(measurement(K.BODY_WEIGHT, weight="80.0"), T0)
    a = patient.measure(measurement(K.BODY_WEIGHT, weight=weight), T0 + timedelta(days=3))
    assert a.zone == zone
    assert ("envelope.weight.gain" in {f.rule for f in a.fired}) is (zone == Zone.RED)


def test_every_shipped_profile_lies_within_the_envelope() -> None:
    for name in shipped_profiles():
        assert plan(name).problems == (), name


# A plan that tries to cross each line: (profile, rule, one step beyond, exactly at the line).
CROSSINGS = [
    ("standard-copd", "spo2.red", "82", "83"),
    ("standard-copd", "spo2.red", "82.5", "83"),  # a limit written finer than the step
    ("standard-copd", "spo2.pulse.red.low", "39", "40"),
    ("standard-copd", "spo2.pulse.red.high", "132", "131"),
    ("standard-heart-failure", "bp.systolic.red.low", "79", "80"),
    ("standard-heart-failure", "bp.systolic.red.high", "221", "220"),
    ("standard-heart-failure", "bp.pulse.red.low", "39", "40"),
    ("standard-heart-failure", "bp.pulse.red.high", "132", "131"),
    ("standard-heart-failure", "weight.gain.red", "3.1", "3"),
]
ENVELOPE_OF = {"spo2.red": "envelope.spo2.low", "spo2.pulse.red.low": "envelope.spo2.pulse.low",
               "spo2.pulse.red.high": "envelope.spo2.pulse.high", "bp.systolic.red.low": "envelope.bp.systolic.low",
               "bp.systolic.red.high": "envelope.bp.systolic.high", "bp.pulse.red.low": "envelope.bp.pulse.low",
               "bp.pulse.red.high": "envelope.bp.pulse.high", "weight.gain.red": "envelope.weight.gain"}
# Bands out of order, and limits in another unit: refused by the box and by the plan tool alike.
REFUSED = [
    ("standard-copd", "spo2.red", "96", "bands out of order: spo2.yellow .* is not inside spo2.red"),
    ("standard-copd", "spo2.yellow", "90", "bands out of order: spo2.yellow .* is not inside spo2.red"),
    ("standard-copd", "spo2.yellow", "50", "spo2.yellow .* is beyond the safety envelope"),
    ("standard-copd", "bp.systolic.yellow.high", "300", "bp.systolic.yellow.high .* is beyond the safety envelope"),
    ("standard-heart-failure", "weight.gain.yellow", "2.2", "bands out of order: weight.gain.yellow"),
    ("standard-copd", "bp.systolic.yellow.low", "170", "no green left for blood_pressure systolic"),
    ("standard-heart-failure", "bp.systolic.red.high", "29.3", r"29.3 is outside .* mmHg for systolic \(kPa\?"),
    ("standard-heart-failure", "bp.diastolic.yellow.low", "8", r"8 is outside .* mmHg for diastolic \(kPa\?"),
    ("standard-copd", "temp.yellow.high", "100.4", r"100.4 is outside .* for temperature \(°F\?"),
    ("standard-heart-failure", "weight.gain.red", "4.4", r"a change of 4.4 is outside .* kg for weight \(pounds\?"),
    ("standard-copd-scale2", "spo2.persistent", "83",
     r"spo2.persistent \(<= 83 % 3 times in a row\) is beyond the safety envelope"),
    ("standard-copd", "spo2.fall", "30", r"a change of 30 is outside the plausible range 1 to 15 points"),
]


def _box(tenant: Tenant, profile: str, *overrides: Override) -> Accepted:
    raw = message(signed(document(2, spo2_red=None, profile=profile, overrides=overrides), tenant.gp, tenant.nurse))
    return verify_config(raw, binding=BINDING, root=tenant.root.public_key(),
                         in_force=InForce(tenant.opened_store(), 1, "sha256:" + "1" * 64), now=NOW,
                         templates=ADVICE, profiles=load_profile)


@pytest.mark.parametrize(("profile", "rule", "beyond", "at"), CROSSINGS, ids=[f"{c[1]}={c[2]}" for c in CROSSINGS])
def test_the_box_refuses_a_plan_beyond_each_line_naming_the_rule(profile: str, rule: str, beyond: str,
                                                                 at: str) -> None:
    tenant = Tenant()
    with pytest.raises(PlanRejected) as refused:
        _box(tenant, profile, _set(rule, beyond))
    assert f"{rule} (" in refused.value.reason and "beyond the safety envelope" in refused.value.reason
    assert ENVELOPE_OF[rule] in refused.value.reason
    with pytest.raises(PlanRejected, match=f"{rule} cannot be switched off"):
        _box(tenant, profile, _off(rule))
    assert _box(tenant, profile, _set(rule, at)).plan is not None


@pytest.mark.parametrize(("profile", "rule", "limit", "reason"), REFUSED, ids=[f"{r[1]}={r[2]}" for r in REFUSED])
def test_the_box_refuses_unordered_bands_and_limits_in_another_unit(profile: str, rule: str, limit: str,
                                                                    reason: str) -> None:
    with pytest.raises(PlanRejected, match=reason):
        _box(Tenant(), profile, _set(rule, limit))


def _draft(capsys: pytest.CaptureFixture[str], out: Path, profile: str, *args: str) -> tuple[int, str]:
    code = main(["plan", "draft", "--tenant", "demo-kommune", "--gateway", "gw-0001", "--patient", "p-7f3a9c",
                 "--version", "2", "--profile", profile, "--enrolled", "2026-11-01", "--out", str(out), *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("profile", "rule", "beyond", "at"), CROSSINGS, ids=[f"{c[1]}={c[2]}" for c in CROSSINGS])
def test_the_plan_tool_refuses_to_draft_beyond_each_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         profile: str, rule: str, beyond: str, at: str) -> None:
    code, err = _draft(capsys, tmp_path / "plan.json", profile, "--set", f"{rule}={beyond}", ORDER)
    assert code == 2 and f"{rule} (" in err and "beyond the safety envelope" in err and ENVELOPE_OF[rule] in err
    code, err = _draft(capsys, tmp_path / "plan.json", profile, "--off", rule, ORDER)
    assert code == 2 and f"{rule} cannot be switched off" in err
    assert not (tmp_path / "plan.json").exists()
    assert _draft(capsys, tmp_path / "plan.json", profile, "--set", f"{rule}={at}", ORDER)[0] == 0


@pytest.mark.parametrize(("profile", "rule", "limit", "reason"), REFUSED, ids=[f"{r[1]}={r[2]}" for r in REFUSED])
def test_the_plan_tool_refuses_unordered_bands_and_limits_in_another_unit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str, rule: str, limit: str, reason: str) -> None:
    code, err = _draft(capsys, tmp_path / "plan.json", profile, "--set", f"{rule}={limit}", ORDER)
    assert code == 2
    assert re.search(reason, err), err


def test_a_plan_whose_kinds_no_paired_device_measures_is_a_fault() -> None:
    """Issue 18.3: a heart-failure plan on a kit with only an oximeter judged nothing, and nobody was told."""
    hf = plan("standard-heart-failure")
    assert unmeasured_kinds(hf, [K.SPO2]) == [K.BLOOD_PRESSURE, K.BODY_WEIGHT]
    [fault] = unmeasured_faults(hf, [K.SPO2])
    assert "standard profile standard-heart-failure" in fault and "blood_pressure, body_weight" in fault
    assert "every reading is unassessed" in fault
    assert unmeasured_faults(hf, [K.BLOOD_PRESSURE, K.BODY_WEIGHT]) == []
    # A COPD kit without a paired thermometer (the patient's own is often used) is no fault.
    assert unmeasured_faults(plan("standard-copd"), [K.SPO2, K.BLOOD_PRESSURE]) == []
    # A kind the plan schedules explicitly must have a device.
    scheduled = plan("standard-copd").model_copy(update={"measured": (K.SPO2, K.BODY_TEMPERATURE)})
    [fault] = unmeasured_faults(scheduled, [K.SPO2])
    assert "schedules body_temperature" in fault


def test_the_plan_correcting_one_published_before_the_envelope_can_be_drafted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plan in force that crosses today's envelope must not block the diff of the plan that corrects it."""
    audit = SqliteAuditLog(tmp_path / "audit.sqlite3")
    published = document(3, spo2_red=80)  # built unchecked, as an earlier release published it
    envelope = unsigned(published)
    audit.record(AuditEntry(NOW.isoformat(), published.tenant, published.gateway, published.patient, 3, envelope.hash,
                            "gp", "rn", "", envelope.to_json().decode()))
    audit.close()
    code = main(["plan", "draft", "--tenant", published.tenant, "--gateway", published.gateway, "--patient",
                 published.patient, "--version", "4", "--profile", "standard-copd", "--enrolled", "2026-01-01",
                 "--audit", str(tmp_path / "audit.sqlite3"), "--out", str(tmp_path / "plan.json"),
                 "--set", "spo2.red=85", ORDER])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "SpO2 red at or below 85 % instead of 80 %, GP order 2026-11-02" in out
