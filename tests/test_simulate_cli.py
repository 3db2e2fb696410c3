"""A technician's `dho-gateway simulate`: every shipped scenario played on simulated BLE devices through
bleak, the sessions, zoning and a sealed outbox, each reading's zone checked against the scenario."""

from __future__ import annotations

import pytest

from tests.support import cli

SCENARIOS = ["stable-copd", "copd-exacerbation", "heart-failure-decompensation", "user-errors"]


def test_list_shows_devices_and_scenarios() -> None:
    run = cli("simulate", "list")
    assert run.returncode == 0, run.stderr
    assert "blood_pressure, body_temperature, body_weight, glucose, spo2" in run.stdout
    assert all(f"scenario:  {name}" in run.stdout for name in SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_gives_the_zones_it_expects(name: str) -> None:
    run = cli("simulate", "scenario", name, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 mismatch(es)" in run.stdout
    if name == "copd-exacerbation":
        red = [line for line in run.stdout.splitlines() if " RED " in line]
        assert len(red) == 1 and "spo2 90 %" in red[0]
        assert "113" in run.stdout  # the emergency notice goes with the red


def test_one_device_and_a_mistyped_name() -> None:
    run = cli("simulate", "device", "body_weight", "--readings", "2")
    assert run.returncode == 0 and "2 reading(s) through the gateway" in run.stdout
    wrong = cli("simulate", "scenario", "copd-exacerbaton")
    assert wrong.returncode == 2 and "no scenario 'copd-exacerbaton'" in wrong.stderr
