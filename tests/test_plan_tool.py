"""`dho-central plan`: the second person reads a plain-language diff; the tool refuses what the box would refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.cli import main
from central.plans import AuditEntry, SqliteAuditLog, describe_changes, draft, parse_override, unsigned
from tests.plan_support import NOW, document


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["plan", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    for key_id, role, holder in (("gp-hansen", "prescriber", "Dr. Kari Hansen, GP"),
                                 ("gp-berg", "prescriber", "Dr. Per Berg, GP"),
                                 ("rn-olsen", "verifier", "Nurse Ola Olsen")):
        assert run(capsys, "keygen", "--id", key_id, "--role", role, "--holder", holder, "--out", tmp_path)[0] == 0
    return tmp_path


def _draft(capsys: pytest.CaptureFixture[str], out: Path, *extra: str) -> Path:
    code, _, err = run(capsys, "draft", "--tenant", "demo-kommune", "--gateway", "gw-0001", "--patient", "p-7f3a9c",
                       "--version", "1", "--profile", "standard-copd", "--enrolled", "2026-11-01", "--out", out, *extra)
    assert code == 0, err
    return out


def test_the_diff_says_what_changes_in_the_words_of_the_order() -> None:
    in_force = document(1, spo2_red=90)
    new = document(2, spo2_red=88, overrides=(
        parse_override("spo2.red", "88", "GP order 2026-11-02"),
        parse_override("spo2.pulse.yellow.low", "off", "GP order 2026-11-02"),
    ))
    assert describe_changes(in_force, new) == [
        "SpO2 red at or below 88 % instead of 90 %, GP order 2026-11-02",
        "pulse yellow at or below 50 /min: switched off, GP order 2026-11-02",
    ]
    assert describe_changes(new, document(3, spo2_red=None)) == [
        "SpO2 red at or below 91 % instead of 88 %, back to the standard profile",
        "pulse yellow at or below 50 /min: switched on again, back to the standard profile",
    ]
    assert describe_changes(in_force, document(2, spo2_red=90)) == ["no change to any threshold"]


def test_the_tool_refuses_an_override_the_box_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "draft", "--tenant", "t", "--gateway", "g", "--patient", "p", "--version", "1",
                       "--profile", "standard-copd", "--set", "spo2.purple=88", "GP order", "--enrolled",
                       "2026-11-01", "--out", tmp_path / "plan.json")
    assert code == 2
    assert err.strip().splitlines() == [
        "dho-central: error: plan: overrides name rule(s) the profile standard-copd does not have: "
        "spo2.purple"]
    assert not (tmp_path / "plan.json").exists()


def test_signing_needs_one_prescriber_and_one_verifier(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _draft(capsys, keys / "plan.json", "--set", "spo2.red=88", "GP order 2026-11-02")
    assert run(capsys, "sign", plan, "--key", keys / "gp-hansen.key", "--pub", keys / "gp-hansen.pub.json")[0] == 0
    code, _, err = run(capsys, "sign", plan, "--key", keys / "gp-hansen.key", "--pub", keys / "gp-hansen.pub.json")
    assert (code, err.strip()) == (2, "dho-central: error: key gp-hansen has signed this plan already")
    code, _, err = run(capsys, "sign", plan, "--key", keys / "gp-berg.key", "--pub", keys / "gp-berg.pub.json")
    assert code == 2 and "a prescriber has signed this plan already" in err
    code, out, _ = run(capsys, "sign", plan, "--key", keys / "rn-olsen.key", "--pub", keys / "rn-olsen.pub.json")
    assert code == 0 and "2 of 2 signatures" in out


def test_a_key_is_never_overwritten(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (keys / "gp-hansen.key").read_bytes()
    code, _, err = run(capsys, "keygen", "--id", "gp-hansen", "--role", "prescriber", "--holder", "X", "--out", keys)
    assert code == 2 and "a key is never overwritten" in err
    assert (keys / "gp-hansen.key").read_bytes() == before
    assert (keys / "gp-hansen.key").stat().st_mode & 0o077 == 0


def test_the_audit_trail_gives_the_plan_in_force_to_the_next_diff(tmp_path: Path) -> None:
    audit = SqliteAuditLog(tmp_path / "audit.sqlite3")
    first = draft(tenant="demo-kommune", gateway="gw-0001", patient="p-7f3a9c", version=1, profile="standard-copd",
                  overrides=[parse_override("spo2.red", "88", "GP order 2026-11-02")], enrolled=NOW.date(),
                  issued=NOW, valid_days=365, language="nb")
    envelope = unsigned(first)
    audit.record(AuditEntry(NOW.isoformat(), "demo-kommune", "gw-0001", "p-7f3a9c", 1, envelope.hash,
                            "Dr. Kari Hansen, GP (key gp-hansen)", "Nurse Ola Olsen (key rn-olsen)",
                            "SpO2 red ...", envelope.to_json().decode()))
    latest = audit.latest("demo-kommune", "gw-0001", "p-7f3a9c")
    assert latest is not None and latest.version == 1 and latest.plan_hash == envelope.hash
    assert audit.latest("demo-kommune", "gw-0002", "p-7f3a9c") is None
    audit.close()


def test_a_draft_must_be_newer_than_the_plan_published_last(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = SqliteAuditLog(keys / "audit.sqlite3")
    published = document(3)
    envelope = unsigned(published)
    audit.record(AuditEntry(NOW.isoformat(), published.tenant, published.gateway, published.patient, 3, envelope.hash,
                            "gp", "rn", "", envelope.to_json().decode()))
    audit.close()
    code, _, err = run(capsys, "draft", "--tenant", published.tenant, "--gateway", published.gateway, "--patient",
                       published.patient, "--version", "3", "--profile", "standard-copd", "--enrolled", "2026-11-01",
                       "--audit", keys / "audit.sqlite3", "--out", keys / "plan.json")
    assert (code, err.strip()) == (2, "dho-central: error: plan v3 was published already for this patient: draft "
                                      "with --version 4")
    plan = _draft(capsys, keys / "plan.json", "--version", "4", "--audit", str(keys / "audit.sqlite3"))
    code, out, _ = run(capsys, "sign", plan, "--key", keys / "rn-olsen.key", "--pub", keys / "rn-olsen.pub.json",
                       "--audit", keys / "audit.sqlite3")
    assert code == 0
    assert out.splitlines()[1:] == ["what you signed, against plan v3 in force:",
                                    "  SpO2 red at or below 91 % instead of 88 %, back to the standard profile",
                                    "  schedule counts from 2026-11-01 instead of 2026-01-01"]
