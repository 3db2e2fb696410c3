"""The fleet and its faults, CI-sized: simulated gateways on the real uplink, worker processes
(`dho-central ingest`) on PostgreSQL, a real Mosquitto. Each ends with every reading stored exactly once
and acked: 0 lost, 0 stored twice. (The 2,000-gateway run with its figures is bench/fleet.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.fleet_sim import Fleet, quiet_sync_logs
from central.store import Database
from protocol import BrokerSettings, Topics, make_client
from tests.central_support import batch, reading
from tests.conftest import Mosquitto, throwaway_postgres
from tests.support import ROOT


class Worker:
    """One `dho-central ingest` worker process; the same index is the same MQTT session."""

    def __init__(self, db: str, port: int, index: int, folder: Path) -> None:
        self.argv = [sys.executable, "-m", "central.cli", "ingest", "--workers", "1", "--index", str(index),
                     "--name", "fleet", "--db", db, "--broker", f"127.0.0.1:{port}", "--insecure-dev"]
        self.log = folder / f"worker-{index}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> int:
        mark = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(self.argv, cwd=ROOT, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        return mark

    async def start(self) -> None:
        mark = self.spawn()
        assert self.process is not None
        async with asyncio.timeout(20):
            while b" ready: " not in self.log.read_bytes()[mark:]:
                assert self.process.poll() is None, self.log.read_text()
                await asyncio.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=10)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Every worker process a test starts; any still running when it ends (a failure) is killed."""
    started: list[Worker] = []
    yield started
    for w in started:
        if w.process is not None and w.process.poll() is None:
            w.kill()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        yield url


@contextlib.asynccontextmanager
async def fleet_running(fleet: Fleet) -> AsyncIterator[None]:
    with quiet_sync_logs():
        task = asyncio.create_task(fleet.run(connect_spread_s=0.5))
        try:
            await fleet.wait("connected", 30)
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def provisioned(url: str, fleet: Fleet) -> Database:
    database = Database(url)
    for gateway, tenant, patient in fleet.registry():
        database.provision(gateway, tenant=tenant, patient=patient)
    return database


def assert_exactly_once(database: Database, fleet: Fleet) -> None:
    assert fleet.pending() == 0 and fleet.acked == set(fleet.sent)  # 0 lost: every reading acked
    assert database.count() == len(fleet.sent)  # ... and stored, once each
    assert database.count("observations") == 2 * len(fleet.sent)  # each reading: its value and its pulse
    assert database.duplicate_ids() == 0


async def until(condition: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_batch_and_all_workers_down_lose_nothing(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str, workers: list[Worker]
) -> None:
    fleet = Fleet(BrokerSettings(port=mosquitto.port, insecure_dev=True), 30, batch_size=10, ack_timeout_s=3)
    database = provisioned(postgres_url, fleet)
    workers += [Worker(postgres_url, mosquitto.port, i, tmp_path) for i in (1, 2)]
    await asyncio.gather(*(w.start() for w in workers))
    async with fleet_running(fleet):
        fleet.measure(20)  # 600 readings
        await until(lambda: database.count() >= 1, 30)
        workers[0].kill()  # SIGKILL while the group is busy: its uncommitted batch was never acked
        # Restarted as the supervisor does (`ingest --workers N`), with the same session: the broker kept
        # its unacknowledged messages, and its share of new ones, for it.
        await workers[0].start()
        await fleet.wait("drained", 60)
        # Every worker down while the gateways keep measuring (30 s in production drills; 3 s here).
        for w in workers:
            w.kill()
        fleet.measure(5)
        await asyncio.sleep(3)
        assert fleet.pending() == 150  # nothing acked while no worker runs
        await asyncio.gather(*(w.start() for w in workers))
        await fleet.wait("drained", 60)
    for w in workers:
        w.kill(signal.SIGTERM)
    assert_exactly_once(database, fleet)
    database.close()


async def test_a_broker_restart_keeps_queued_messages_and_the_fleet_reconnects(
    tmp_path: Path, postgres_url: str, workers: list[Worker]
) -> None:
    store = tmp_path / "broker"
    store.mkdir()
    broker = Mosquitto(store, f"persistence true\npersistence_location {store}/\nautosave_interval 1\n")
    broker.start()
    try:
        fleet = Fleet(BrokerSettings(port=broker.port, insecure_dev=True), 30, batch_size=10, ack_timeout_s=3,
                      prefix="br")
        database = provisioned(postgres_url, fleet)
        database.provision("gw-raw", tenant="t1", patient="p-1")
        worker = Worker(postgres_url, broker.port, 1, tmp_path)
        workers.append(worker)
        await worker.start()
        worker.kill(signal.SIGTERM)  # its session (and shared subscription) stays in the broker
        # Published once, never again (no gateway behind it): only the broker's persistence can keep it.
        raw = [reading() for _ in range(20)]
        async with make_client(BrokerSettings(port=broker.port, insecure_dev=True), "gw-raw") as client:
            for r in raw:
                await client.publish(Topics("t1", "gw-raw").readings, batch("gw-raw", [r]), qos=1)
        async with fleet_running(fleet):
            fleet.measure(10)
            await asyncio.sleep(1)
            broker.stop()  # saves its store: sessions, subscriptions, queued messages
            broker.start()
            await worker.start()
            await fleet.wait("connected", 60)  # the whole fleet reconnects at once
            await fleet.wait("drained", 60)
            await until(lambda: database.count() == len(fleet.sent) + len(raw), 30)
        worker.kill(signal.SIGTERM)
        assert len(database.reading_bodies("gw-raw")) == 20
        assert database.count() == len(fleet.sent) + 20 and database.duplicate_ids() == 0
        assert fleet.acked == set(fleet.sent)
        database.close()
    finally:
        broker.stop()


def private_postgres_possible() -> bool:
    return os.geteuid() == 0 and bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


class PrivatePostgres:
    """A PostgreSQL server of this test's own (the machine's shared one must not be stopped)."""

    def __init__(self) -> None:
        self.bin = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
        self.folder = Path(tempfile.mkdtemp(prefix="dho-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        from gateway.demo import free_port

        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                          "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on",
                          "-w", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


async def test_a_postgresql_restart_under_load_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, workers: list[Worker]
) -> None:
    if not private_postgres_possible():
        pytest.skip("needs root and PostgreSQL's server binaries to run a private server (CI has both)")
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        fleet = Fleet(BrokerSettings(port=mosquitto.port, insecure_dev=True), 30, batch_size=5, ack_timeout_s=3,
                      prefix="pg")
        database = provisioned(server.url, fleet)
        workers.append(Worker(server.url, mosquitto.port, 1, tmp_path))
        await workers[0].start()
        async with fleet_running(fleet):
            fleet.measure(20)
            await until(lambda: database.count() >= 50, 30)
            started = time.monotonic()
            await asyncio.to_thread(server.stop)  # fast shutdown: open transactions are rolled back
            fleet.measure(5)  # readings keep coming while the database is down: the workers must feel it
            await asyncio.sleep(2)
            await asyncio.to_thread(server.start)
            assert time.monotonic() - started < 30
            await fleet.wait("drained", 90)
        for w in workers:
            w.kill(signal.SIGTERM)
        assert b"database unavailable" in b"".join(w.log.read_bytes() for w in workers)  # it was felt
        assert_exactly_once(database, fleet)
        database.close()
    finally:
        server.remove()


def spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def test_ingest_with_n_workers_restarts_a_killed_worker_and_stops_them_all(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str
) -> None:
    log = tmp_path / "ingest.log"
    command = [sys.executable, "-m", "central.cli", "ingest", "--workers", "2", "--name", "pool", "--db",
               postgres_url, "--broker", f"127.0.0.1:{mosquitto.port}", "--insecure-dev"]
    supervisor = spawn(command, log)
    try:
        await until(lambda: b"pool-1 ready" in log.read_bytes() and b"pool-2 ready" in log.read_bytes(), 30)
        children = [int(line.split(b"(pid ")[1].split(b")")[0]) for line in log.read_bytes().splitlines()
                    if b" started (pid " in line]
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        await until(lambda: log.read_bytes().count(b"pool-1 ready") == 2, 30)
        assert b"exited with -9; starting it again" in log.read_bytes()
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(supervisor.wait, 20) == 0
        for pid in children[1:]:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_the_fleet_benchmark_still_runs(tmp_path: Path) -> None:
    """A benchmark that breaks unnoticed measures nothing: bench/fleet.py at a tiny size."""
    run = subprocess.run([sys.executable, "bench/fleet.py", "--gateways", "8", "--per-gateway", "1", "--day", "1",
                          "--workers", "1", "--down", "0.5", "--ack-timeout", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ratio" in run.stdout and "0 stored twice" in run.stdout
