"""Shared fixtures: a real Mosquitto on a free loopback port, started and stopped by the test run."""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.demo import free_port

if TYPE_CHECKING:
    from tests.kit_support import Office


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        pytest.fail("mosquitto is not installed: run the tests through `make test`, which installs it")
    return found


class Mosquitto:
    def __init__(self, workdir: Path, extra_conf: str = "", *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.extra_conf = extra_conf
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        plain = "" if "certfile" in self.extra_conf else "allow_anonymous true\n"
        self.conf.write_text(
            # `user`: started as root, Mosquitto would switch to its own user and not read the test's files.
            f"listener {self.port} 127.0.0.1\nuser {getpass.getuser()}\n{plain}persistence false\n"
            f"set_tcp_nodelay true\n{self.extra_conf}"
        )
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)], stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def no_blocking() -> Iterator[None]:
    """Fails the test (BlockingError) on a blocking call (file, socket, SQLite, sleep) made on the event
    loop's thread from the gateway's own code: such work belongs in asyncio.to_thread."""
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["gateway", "protocol", "drivers", "zoning"]):
        yield


# PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres; `.ci/run` starts it): each test that asks
# gets a throwaway database with a unique name, dropped afterwards. Unreachable is a failure, not a skip.
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _postgres_admin(sql: str) -> None:
    import psycopg

    try:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}): run the tests through .ci/run, "
                    "which starts it")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    name = f"dho_test_{uuid.uuid4().hex[:12]}"
    _postgres_admin(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        _postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The central database, once on a SQLite file and once on a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "central.sqlite3")
    else:
        with throwaway_postgres() as url:
            yield url


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    """A private D-Bus (dbus-daemon, which `make test` installs) for the BlueZ glue against the fake BlueZ."""
    if shutil.which("dbus-daemon") is None:
        pytest.fail("dbus-daemon is not installed (Debian package dbus): run the tests through `make test`")
    config = tmp_path / "bus.conf"
    config.write_text(f"""<busconfig><type>session</type><listen>unix:dir={tmp_path}</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>""")
    daemon = subprocess.Popen(["dbus-daemon", "--config-file", str(config), "--nofork", "--print-address"],
                              stdout=subprocess.PIPE, text=True)
    assert daemon.stdout is not None
    try:
        yield daemon.stdout.readline().strip()
    finally:
        daemon.terminate()
        daemon.wait()


# A municipality's office for the kit tests: the tenant CA, the trust store, the kit's files (tests/kit_support.py).
@pytest.fixture
def office(tmp_path: Path) -> Office:
    from tests.kit_support import Office

    return Office.create(tmp_path / "office")


@pytest.fixture
def broker(office: Office) -> Iterator[Mosquitto]:
    """The office's Mosquitto: mutual TLS against the tenant CA, reading its CRL."""
    b = office.broker()
    b.start()
    yield b
    b.stop()
