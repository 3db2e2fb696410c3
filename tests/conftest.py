"""Shared fixtures: a real Mosquitto on a free loopback port, started and stopped by the test run."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.demo import free_port


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

    with blockbuster_ctx(["gateway", "sync", "drivers", "zoning"]):
        yield
