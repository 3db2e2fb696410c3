"""Wrong patient (issue 9.7): a kit handed to the next patient without a wipe must not judge the new
patient against the previous one's history, and the patient's identity cannot come from the environment."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from drivers import uuids
from gateway.service import Gateway, IdleDeviceSource
from gateway.settings import ConfigError, load_settings
from hardware_sims import encoding
from tests.support import ROOT, cli, config_for, take

EXAMPLE = ROOT / "config" / "gateway.example.toml"
SCALE = "F0:5E:1A:00:00:31"


def weighing(kg: str, stamp: datetime) -> bytes:
    return bytes([0x02]) + int(Decimal(kg) / Decimal("0.005")).to_bytes(2, "little") + encoding.date_time(stamp)


def kit_config(tmp_path: Path, patient: str) -> Path:
    """The example configuration for a heart-failure kit with a scale, handed to `patient`."""
    path = config_for(tmp_path, 1)
    text = path.read_text().replace('patient = "p-7f3a9c"', f'patient = "{patient}"')
    text = text.replace('profile = "standard-blood-pressure"', 'profile = "standard-heart-failure"')
    text += f'\n[[devices]]\naddress = "{SCALE}"\nkind = "body_weight"\n'
    path.write_text(text)
    return path


async def test_a_kit_given_to_a_new_patient_without_a_wipe_refuses_to_start_and_starts_empty_after_one(
    tmp_path: Path,
) -> None:
    first = Gateway(load_settings(kit_config(tmp_path, "p-first")), IdleDeviceSource())
    for day in range(1, 8):
        value = weighing("60.0", datetime(2026, 11, day, 7))
        await take(first.pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, value)
    assert len(first.pipeline.history) == 7
    first.outbox.close()

    # The kit goes to the next patient; the technician changes the pseudonym but forgets the wipe.
    config = kit_config(tmp_path, "p-second")
    with pytest.raises(ConfigError) as refused:
        Gateway(load_settings(config), IdleDeviceSource())
    message = str(refused.value)
    assert "another patient" in message and "dho-gateway wipe" in message
    assert "p-first" not in message and "p-second" not in message  # no pseudonyms in logs
    wiped = cli("wipe", "--config", str(config), "--yes")
    assert wiped.returncode == 0, wiped.stderr
    second = Gateway(load_settings(config), IdleDeviceSource())
    assert second.pipeline.history == []
    # The new patient's first weighing is not judged against 60 kg of someone else.
    reading = await take(second.pipeline, SCALE, uuids.WEIGHT_MEASUREMENT,
                                                  weighing("75.0", datetime(2026, 11, 8, 7)))
    assert reading is not None and reading.patient == "p-second"
    assert second.outbox.depth() == 1
    second.outbox.close()


async def test_the_same_patient_starts_again_with_its_history(tmp_path: Path) -> None:
    config = kit_config(tmp_path, "p-same")
    first = Gateway(load_settings(config), IdleDeviceSource())
    await take(first.pipeline, SCALE, uuids.WEIGHT_MEASUREMENT, weighing("60.0", datetime(2026, 11, 1, 7)))
    first.outbox.close()
    again = Gateway(load_settings(config), IdleDeviceSource())
    assert len(again.pipeline.history) == 1
    again.outbox.close()


@pytest.mark.parametrize("key", ["ID", "TENANT", "PATIENT"])
def test_the_gateways_identity_cannot_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv(f"DHO_GATEWAY__{key}", "p-swapped")
    with pytest.raises(ConfigError, match=f"DHO_GATEWAY__{key}: .*only from the configuration file"):
        load_settings(EXAMPLE)


def test_an_identity_in_the_environment_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    import os

    run = cli("status", "--config", str(EXAMPLE), env={**os.environ, "DHO_GATEWAY__PATIENT": "p-swapped"})
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert "DHO_GATEWAY__PATIENT" in run.stderr and "p-swapped" not in run.stderr


def test_other_settings_still_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHO_MQTT__HOST", "broker.example.test")
    assert load_settings(EXAMPLE).mqtt.host == "broker.example.test"
