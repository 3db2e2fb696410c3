"""One process per box (issue 19.3): `run` holds its data directory; a second `run`, `wipe --yes`,
`outbox salvage` and `kit reissue` refuse with one line while it is held, and change nothing. The lock
dies with its holder: after a kill -9 the next command goes ahead."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.kit.reissue import reissue
from gateway.settings import load_settings
from gateway.storage import LOCK_NAME, DataDirBusy, data_dir_lock
from tests.conftest import Mosquitto
from tests.kit_support import Office
from tests.support import ROOT, cli, config_for
from tests.test_kit_reissue import every_file, used_kit


def refused(run: subprocess.CompletedProcess[str], pid: int) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert f"pid {pid}" in run.stderr and "nothing changed" in run.stderr
    return run.stderr


def keys(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("outbox.key")}


async def running_gateway(config: Path) -> asyncio.subprocess.Process:
    """`dho-gateway run` started as systemd would, returned once it holds its data directory."""
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config),
        cwd=ROOT, stderr=asyncio.subprocess.DEVNULL,
    )
    lock = config.parent / LOCK_NAME
    async with asyncio.timeout(30):
        while not (lock.exists() and lock.read_text().strip() == str(service.pid)):
            await asyncio.sleep(0.05)
    return service


async def test_a_running_gateway_keeps_a_second_run_a_wipe_and_a_salvage_out(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = config_for(tmp_path, mosquitto.port)
    service = await running_gateway(config)
    try:
        kept = keys(tmp_path)
        assert kept, "the running gateway made its key"
        second = await asyncio.to_thread(cli, "run", "--config", str(config), timeout=30)
        assert "before starting another `run`" in refused(second, service.pid)
        wipe = await asyncio.to_thread(cli, "wipe", "--config", str(config), "--yes")
        assert "before a wipe" in refused(wipe, service.pid)
        assert keys(tmp_path) == kept
        salvage = await asyncio.to_thread(cli, "outbox", "salvage", "--config", str(config))
        assert "before a salvage" in refused(salvage, service.pid)
        assert service.returncode is None, "the running gateway was not disturbed"
        status = await asyncio.to_thread(cli, "status", "--config", str(config))
        assert status.returncode == 0, status.stderr  # status stays safe while the service runs
    finally:
        service.send_signal(signal.SIGKILL)  # a power cut: the kernel drops the lock with the process
        await service.wait()
    wipe = await asyncio.to_thread(cli, "wipe", "--config", str(config), "--yes")
    assert wipe.returncode == 0, wipe.stderr
    assert not (tmp_path / "outbox.key").exists()


async def test_a_reissue_refuses_while_another_process_holds_the_data_directory(
        tmp_path: Path, office: Office, mosquitto: Mosquitto) -> None:
    config, _ = used_kit(tmp_path, office, mosquitto.port)
    data_dir = load_settings(config).gateway.data_dir
    before = every_file(config.parent, data_dir)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import sys, time; from pathlib import Path; from gateway.storage import data_dir_lock\n"
        "with data_dir_lock(Path(sys.argv[1]), 'x'):\n    print('held', flush=True); time.sleep(60)",
        str(data_dir), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        with pytest.raises(DataDirBusy, match=f"pid {holder.pid}.*before a reissue; nothing changed"):
            await reissue(config, running=lambda: False, out=lambda _line: None)
    finally:
        holder.kill()
        await holder.wait()
    after = every_file(config.parent, data_dir)
    after.pop(data_dir / LOCK_NAME)  # the holder's pid, nothing else
    assert after == before  # not even a journal


def test_the_lock_is_one_holder_at_a_time_and_outlives_no_one(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path, "x"):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(DataDirBusy, match="before a second thing"), data_dir_lock(tmp_path, "a second thing"):
            pass
    with data_dir_lock(tmp_path, "x"):  # released on leaving the block
        pass
    with data_dir_lock(tmp_path / "never-made", "x"):  # nothing can be using a directory that is not there
        pass
