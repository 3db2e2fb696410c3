"""Issue 9.9: thresholds come only from shipped profiles pinned by content hash (or a signed plan), never from
a file path or the environment, and every assessment names the hash of the rules it was judged by."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.measurement import MeasurementKind as K
from gateway.plans import PINNED, load_advice, load_profile, read_shipped_profile, shipped_profiles
from gateway.plans import standard as standard_module
from gateway.settings import ConfigError, load_settings
from tests.support import ROOT
from tests.zoning_support import assess, measurement
from zoning import Override, Plan, Zone, standard_plan

ADVICE = load_advice()


@pytest.mark.parametrize("name", shipped_profiles())
def test_every_shipped_profile_matches_its_pin(name: str) -> None:
    found = read_shipped_profile(name).content_hash()
    assert PINNED.get(name) == found, (
        f"{name} changed: after a clinical review, pin it in gateway/plans/standard.py as {found!r}")


def test_a_profile_edited_on_the_box_fails_its_pin_and_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = read_shipped_profile("standard-copd")
    red = next(r for r in shipped.rules if r.id == "spo2.red")
    edited = shipped.model_copy(update={"rules": tuple(
        r.model_copy(update={"limit": Decimal(80)}) if r is red else r for r in shipped.rules)})
    assert (edited.id, edited.version) == ("standard-copd", 1)  # it still calls itself the standard profile
    monkeypatch.setattr(standard_module, "read_shipped_profile", lambda _name: edited)
    load_profile.cache_clear()
    try:
        with pytest.raises(ConfigError, match="do not match the hash pinned for this release"):
            load_profile("standard-copd")
    finally:
        load_profile.cache_clear()


def test_a_profile_file_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hf.json"
    path.write_text(load_profile("standard-heart-failure").model_dump_json())
    with pytest.raises(ConfigError, match="no shipped profile"):
        load_profile(str(path))
    config = tmp_path / "gateway.toml"
    text = (ROOT / "config" / "gateway.example.toml").read_text()
    config.write_text(text.replace('profile = "standard-blood-pressure"', f'profile = "{path}"'))
    with pytest.raises(ConfigError, match=r"zoning\.profile: .* profiles are never read from a file"):
        load_settings(config)


def test_zoning_and_plans_settings_never_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text((ROOT / "config" / "gateway.example.toml").read_text())
    monkeypatch.setenv("DHO_ZONING__PROFILE", "standard-copd")
    monkeypatch.setenv("DHO_PLANS__ROOT_KEY", "A" * 43 + "=")
    monkeypatch.setenv("DHO_MQTT__HOST", "broker.example.no")  # other sections still may
    settings = load_settings(config)
    assert settings.zoning.profile == "standard-blood-pressure"
    assert settings.plans.root_key is None
    assert settings.mqtt.host == "broker.example.no"
    assert "DHO_ZONING__* environment variables are ignored" in caplog.text


def test_every_assessment_names_the_hash_of_the_rules_it_was_judged_by() -> None:
    base = load_profile("standard-copd")
    standard = standard_plan(base, ADVICE, date(2026, 1, 1))
    ordered = Plan(id=base.id, version=2, profile=base, advice=ADVICE, enrolled=date(2026, 1, 1),
                   overrides=(Override(rule="spo2.red", limit=Decimal(88), reason="GP order 2026-11-02"),),
                   plan_hash="sha256:" + "b" * 64)
    same_again = Plan(id=base.id, version=3, profile=base, advice=ADVICE, enrolled=date(2026, 1, 1),
                      overrides=ordered.overrides, plan_hash="sha256:" + "c" * 64)
    m = measurement(K.SPO2, spo2=90, pulse=70)
    judged = [assess(m, p) for p in (standard, ordered, same_again)]
    assert [a.zone for a in judged] == [Zone.RED, Zone.YELLOW, Zone.YELLOW]
    assert judged[0].rules_hash == PINNED["standard-copd"]
    assert judged[1].rules_hash != judged[0].rules_hash
    assert judged[1].rules_hash == judged[2].rules_hash  # the same rules, whatever the plan's version
    assert [(a.plan_version, a.plan_hash) for a in judged] == [
        (None, None), (2, "sha256:" + "b" * 64), (3, "sha256:" + "c" * 64)]


def test_status_names_the_signed_plan_kept_on_the_box(tmp_path: Path) -> None:
    from gateway.storage import SealedOutbox, load_or_create_key
    from tests.support import cli, config_for

    config = config_for(tmp_path, 1883)
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    outbox.close()
    assert "profile: standard-blood-pressure (no signed plan yet)" in cli("status", "--config", str(config)).stdout
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    outbox.keep_document("plan", 3, b"{}")
    outbox.close()
    assert "signed plan v3 in force" in cli("status", "--config", str(config)).stdout
