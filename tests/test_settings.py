"""Configuration: a wrong file fails at start-up with one line naming file, key and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import ConfigError, load_settings

EXAMPLE = Path(__file__).parent.parent / "config" / "gateway.example.toml"


def test_shipped_example_is_valid() -> None:
    s = load_settings(EXAMPLE)
    assert s.mqtt.port == 8883 and not s.mqtt.insecure_dev
    assert s.devices and s.devices[0].kind == "blood_pressure"


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHO_MQTT__HOST", "broker.example.test")
    monkeypatch.setenv("DHO_SYNC__WINDOW", "4")
    s = load_settings(EXAMPLE)
    assert (s.mqtt.host, s.sync.window) == ("broker.example.test", 4)
    assert s.gateway.tenant == "demo-kommune"  # untouched keys keep the file's values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[gateway\nid = 'x'", "not valid TOML"),
        (EXAMPLE.read_text().replace("window = 8", "window = 50"), "sync.window: Input should be less than or equal"),
        (EXAMPLE.read_text().replace('timezone = "Europe/Oslo"', 'timezone = "Europe/Osloo"'), "gateway.timezone"),
        (EXAMPLE.read_text().replace('kind = "blood_pressure"', 'kind = "blood_presure"'), "devices.0.kind"),
        (EXAMPLE.read_text().replace("[mqtt]", "[mqtt]\ncolour = 'red'"), "mqtt.colour: Extra inputs"),
    ],
)
def test_broken_file_gives_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_prints_one_line_and_exits_2_without_leaking_secrets(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE.read_text().replace("port = 8883", "password = 'hunter2-secret'\nport = 0"))
    run = subprocess.run(
        [sys.executable, "-m", "gateway.service.cli", "status", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "mqtt.port" in run.stderr and str(path) in run.stderr
    assert "hunter2" not in run.stderr + run.stdout


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.toml")


def test_a_bad_environment_override_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHO_SYNC__WINDOW", "50")
    with pytest.raises(ConfigError) as info:
        load_settings(EXAMPLE)
    assert str(info.value).startswith("environment variable DHO_SYNC__WINDOW: sync.window: ")
    assert str(EXAMPLE) not in str(info.value)
