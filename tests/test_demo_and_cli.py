"""What a newcomer runs: the demo, the CLI's help and version, and the published schemas."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocol import WIRE_MODELS
from tests.conftest import Mosquitto
from tests.support import ROOT, cli, config_for


def test_demo_with_embedded_broker_shows_every_zone_its_advice_and_the_emergency_notice() -> None:
    run = cli("demo", "--readings", "6", "--interval", "0.2")
    assert run.returncode == 0, run.stderr
    out = run.stdout.splitlines()
    lines = [line for line in out if " acked " in line]
    assert len(lines) == 6 and all("blood pressure" in line for line in lines)
    # Times in the box's zone, named, as on its pages (issue 19.8: the console said UTC, the page Oslo).
    assert all(re.match(r"\d\d:\d\d:\d\d CES?T  blood pressure", line) for line in lines), lines
    assert [next(z for z in ("GREEN", "YELLOW", "RED") if f" {z} " in line) for line in lines] == [
        "GREEN", "GREEN", "YELLOW", "YELLOW", "RED", "GREEN"]
    red_at, after_red = out.index(lines[4]), out.index(lines[5])
    advice = out[red_at + 1:after_red]
    assert "red section of your self-care plan" in advice[0]
    assert "113" in advice[-1] and "legevakt" in advice[-1] and advice[-1].strip().startswith("!!")
    assert "yellow section" in out[out.index(lines[2]) + 1]  # advice at once, for every zone
    assert "6 reading(s) acknowledged" in run.stdout
    assert "WITHOUT TLS" in run.stderr  # plain TCP is said loudly, even in the demo


async def retained_under(port: int, prefix: str = "dho/v1/#") -> list[str]:
    """Topics a new subscriber to `prefix` is handed as retained messages."""
    import asyncio
    import contextlib

    from protocol import BrokerSettings, make_client

    found: list[str] = []
    async with make_client(BrokerSettings(port=port, insecure_dev=True), "retained-check") as client:
        await client.subscribe(prefix, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    if message.retain:
                        found.append(str(message.topic))
    return found


async def test_demo_against_a_named_broker_runs_fast_readings_and_leaves_no_retained_status(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    import asyncio

    # 14 readings 0.05 s apart: the six-value scenario repeats within one second of the cuff's clock.
    run = await asyncio.to_thread(cli, "demo", "--broker", f"127.0.0.1:{mosquitto.port}", "--readings", "14",
                                  "--interval", "0.05", "--data-dir", str(tmp_path), timeout=60)
    assert run.returncode == 0, run.stderr
    assert "14 reading(s) acknowledged" in run.stdout
    assert await retained_under(mosquitto.port) == []  # no status left under the run's random gateway id
    status = cli("status", "--config", str(config_for(tmp_path, mosquitto.port)), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["outbox_depth"] == 0


async def test_a_demo_stopped_by_sigterm_leaves_no_retained_status(mosquitto: Mosquitto) -> None:
    import asyncio
    import signal

    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.service.cli", "demo", "--broker", f"127.0.0.1:{mosquitto.port}",
        "--interval", "0.1", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert demo.stdout is not None
    async with asyncio.timeout(30):
        while b" acked " not in await demo.stdout.readline():
            pass
    demo.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        _, stderr = await demo.communicate()
    assert demo.returncode == 0, stderr.decode()
    assert await retained_under(mosquitto.port) == []  # not even the Last Will's "offline"


def test_demo_against_an_unreachable_broker_says_so_in_one_line_at_once(tmp_path: Path) -> None:
    from gateway.demo import free_port

    run = cli("demo", "--broker", f"127.0.0.1:{free_port()}", "--readings", "1", timeout=10)
    assert run.returncode == 2
    assert run.stderr.startswith("dho-gateway: error: demo: cannot reach the MQTT broker at 127.0.0.1:")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_status_before_first_run_says_so(tmp_path: Path) -> None:
    run = cli("status", "--config", str(config_for(tmp_path, 1883)))
    assert run.returncode == 2
    assert "has not run yet" in run.stderr


@pytest.mark.parametrize("command", ["demo", "run", "status", "wipe", "version", "schemas", "simulate"])
def test_every_command_has_help(command: str) -> None:
    run = cli(command, "--help")
    assert run.returncode == 0 and "usage: dho-gateway" in run.stdout


def test_published_schemas_match_the_models() -> None:
    for name, model in WIRE_MODELS.items():
        published = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text())
        assert published == model.model_json_schema(mode="serialization"), (
            f"docs/schemas/{name}.schema.json is stale: run `make schemas`"
        )


async def test_run_service_delivers_and_stops_cleanly_on_sigterm(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import asyncio
    import signal

    from central.embedded import EmbeddedCentral
    from protocol import BrokerSettings

    central = EmbeddedCentral(BrokerSettings(port=mosquitto.port, insecure_dev=True), tmp_path / "central.sqlite3")
    central.provision("gw-0001", tenant="demo-kommune", patient="p-7f3a9c")  # the example configuration's
    config = config_for(tmp_path, mosquitto.port)
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config),
            cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            while central.count() < 2:
                await asyncio.sleep(0.05)
        service.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(service.communicate(), 15)
        c.cancel()
    assert service.returncode == 0, stderr.decode()
    assert "stopped" in stderr.decode()
    assert {r.patient for r in central.readings()} == {"p-7f3a9c"}


def test_run_with_missing_tls_files_is_one_line(tmp_path: Path) -> None:
    text = (ROOT / "config" / "gateway.example.toml").read_text()
    config = tmp_path / "gateway.toml"
    config.write_text(text.replace('data_dir = "/var/lib/dho-gateway"', f'data_dir = "{tmp_path}"'))
    run = cli("run", "--config", str(config))
    error = one_line_error(run)
    assert error.startswith("dho-gateway: error: mqtt: cannot load the TLS files")
    assert "mqtt.ca_file /etc/dho-gateway/ca.pem: no such file" in error  # which key, which file


def test_missing_key_beside_an_existing_outbox_is_refused_not_replaced(tmp_path: Path) -> None:
    config = config_for(tmp_path, 1)
    (tmp_path / "outbox.sqlite3").write_bytes(b"")  # an outbox from an earlier run
    run = cli("run", "--config", str(config))
    assert run.returncode == 2 and "key file" in run.stderr and "is missing: restore it" in run.stderr
    assert not (tmp_path / "outbox.key").exists()


def test_wipe_after_a_demo_run(mosquitto: Mosquitto, tmp_path: Path) -> None:
    assert cli("demo", "--broker", f"127.0.0.1:{mosquitto.port}", "--readings", "1", "--interval", "0.1",
               "--data-dir", str(tmp_path)).returncode == 0
    config = config_for(tmp_path, mosquitto.port)
    dry = cli("wipe", "--config", str(config))
    assert dry.returncode == 0 and "--yes" in dry.stdout and (tmp_path / "outbox.key").exists()
    run = cli("wipe", "--config", str(config), "--yes")
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "outbox.key").exists() and not (tmp_path / "outbox.sqlite3").exists()
    assert "has not run yet" in cli("status", "--config", str(config)).stderr


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("dho-gateway: error: ")
    return run.stderr


@pytest.mark.parametrize("command", ["run", "status"])
def test_data_dir_that_is_a_file_is_one_line_naming_the_file_and_key(tmp_path: Path, command: str) -> None:
    config = config_for(tmp_path, 1)
    (tmp_path / "data").write_text("not a directory")
    config.write_text(config.read_text().replace(f'data_dir = "{tmp_path}"', f'data_dir = "{tmp_path / "data"}"'))
    error = one_line_error(cli(command, "--config", str(config), timeout=30))
    assert "gateway.data_dir" in error and str(tmp_path / "data") in error and str(config) in error
    assert "is a file, not a directory" in error


def test_data_dir_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    config = config_for(tmp_path, 1)
    (tmp_path / "blocker").write_text("a file where a parent directory should be")
    wanted = tmp_path / "blocker" / "data"
    config.write_text(config.read_text().replace(f'data_dir = "{tmp_path}"', f'data_dir = "{wanted}"'))
    error = one_line_error(cli("run", "--config", str(config), timeout=30))
    assert "gateway.data_dir" in error and f"cannot create {wanted}" in error


def test_demo_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    error = one_line_error(cli("demo", "--data-dir", str(tmp_path / "data"), "--readings", "1", timeout=30))
    assert "--data-dir" in error and str(tmp_path / "data") in error


def test_an_environment_override_is_blamed_on_the_variable_not_the_file(tmp_path: Path) -> None:
    config = config_for(tmp_path, 1)
    error = one_line_error(cli("status", "--config", str(config), env={**os.environ, "DHO_MQTT__PORT": "eighty"}))
    assert "environment variable DHO_MQTT__PORT" in error and "mqtt.port" in error
    assert f"{config}:" not in error  # the file is fine: it must not be the one blamed


def test_status_with_the_key_missing_beside_an_outbox_says_the_key_is_missing(tmp_path: Path) -> None:
    config = config_for(tmp_path, 1)
    (tmp_path / "outbox.sqlite3").write_bytes(b"")  # an outbox from an earlier run; its key is gone
    error = one_line_error(cli("status", "--config", str(config)))
    assert "key file" in error and "is missing: restore it" in error
    assert "has not run yet" not in error


async def test_demo_runs_one_after_another_on_a_shared_broker_stay_as_fast_as_the_first(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Issue 19.9: each demo's central stayed in the broker's shared group "dho-central" for 5 minutes after
    it ended and kept taking a share of the next demo's readings (ack p50 6.7 ms, then 1.8 s, 2.5 s)."""
    import statistics

    from gateway.demo import run_demo

    p50s = []
    for run in range(3):
        (tmp_path / f"run-{run}").mkdir()
        result = await run_demo(data_dir=tmp_path / f"run-{run}", broker=("127.0.0.1", mosquitto.port), readings=8,
                                interval_s=0.05, out=lambda _line: None, web_port=0)
        assert result.acknowledged == 8
        p50s.append(statistics.median(result.ack_latencies_s))
    assert max(p50s[1:]) <= max(2 * p50s[0], 0.05), p50s  # 50 ms: the floor of what this machine can time
