"""systemd supervision against a real Unix datagram socket, as systemd's own notify socket is."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service import Gateway
from gateway.service.notify import Health, Notifier, keep_watchdog, watchdog_interval
from gateway.settings import build_settings
from hardware_sims.home import SimulatedHome


class NotifySocket:
    """systemd's side: a bound datagram socket; records (monotonic time, message)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def pings(self) -> list[float]:
        return [t for t, m in self.messages if "WATCHDOG=1" in m.split("\n")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[NotifySocket]:
    receiver = NotifySocket(str(tmp_path / "notify"))
    yield receiver
    receiver.close()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_messages_reach_the_socket_in_the_protocols_form(kind: str, tmp_path: Path) -> None:
    systemd = NotifySocket(str(tmp_path / "notify") if kind == "path" else f"@dho-test-{uuid.uuid4().hex}")
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": systemd.address})
    assert notifier.enabled
    assert notifier.ready("3 reading(s) waiting")
    assert notifier.stopping()
    deadline = time.monotonic() + 2
    while len(systemd.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    systemd.close()
    assert systemd.texts() == ["READY=1\nSTATUS=3 reading(s) waiting", "STOPPING=1\nSTATUS=stopping"]


def test_outside_systemd_nothing_is_sent_and_a_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    assert not Notifier.from_environment({}).enabled
    assert Notifier.from_environment({}).ready("x") is False
    gone = Notifier(str(tmp_path / "nobody-listens"))
    assert gone.ready("x") is False  # logged once; the gateway keeps running


def test_the_watchdog_interval_is_half_of_systemds_deadline() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0


async def test_a_blocked_event_loop_stops_the_pings(systemd: NotifySocket) -> None:
    notifier = Notifier(systemd.address)

    async def healthy() -> Health:
        return Health(True, "ok")

    task = asyncio.get_running_loop().create_task(keep_watchdog(notifier, 0.05, healthy))
    await asyncio.sleep(0.5)
    stalled_from = time.monotonic()
    time.sleep(1.0)  # noqa: ASYNC251  (the point: something blocks the loop, a synchronous call that hangs)
    stalled_to = time.monotonic()
    await asyncio.sleep(0.5)
    task.cancel()
    pings = systemd.pings()
    assert len([t for t in pings if t < stalled_from]) >= 3, "pings while the loop ran"
    assert not [t for t in pings if stalled_from + 0.1 < t < stalled_to], "a ping while the loop was blocked"
    assert len([t for t in pings if t > stalled_to]) >= 3, "pings resume once the loop runs again"


async def test_an_outbox_that_hangs_or_fails_withholds_the_ping(systemd: NotifySocket) -> None:
    notifier = Notifier(systemd.address)
    state = {"mode": "ok"}

    async def probe() -> Health:
        if state["mode"] == "hang":
            await asyncio.sleep(3600)
        if state["mode"] == "fail":
            raise OSError("disk I/O error")
        return Health(True, "2 reading(s) waiting")

    task = asyncio.get_running_loop().create_task(keep_watchdog(notifier, 0.05, probe))
    await asyncio.sleep(0.3)
    state["mode"] = "hang"
    await asyncio.sleep(0.06)
    hung_from = time.monotonic()
    await asyncio.sleep(0.5)
    state["mode"] = "fail"
    await asyncio.sleep(0.5)
    failed_to = time.monotonic()
    task.cancel()
    assert systemd.pings() and not [t for t in systemd.pings() if hung_from < t < failed_to]
    texts = systemd.texts()
    assert "STATUS=unhealthy: the outbox did not answer within 0.05 s" in texts
    assert "STATUS=unhealthy: disk I/O error" in texts


async def test_the_gateway_says_ready_pings_with_its_status_and_says_stopping(
    tmp_path: Path, systemd: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WatchdogSec=0.2: a ping every 0.1 s
    source = SimulatedHome(interval_s=0.01, count=0)
    gateway = Gateway(build_settings({
        "gateway": {"id": "gw-n1", "tenant": "t1", "patient": "p1", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": 1, "insecure_dev": True},  # nobody listens: never connected
        "device_source": "simulated-home",
    }), source, notifier=Notifier(systemd.address))
    task = asyncio.get_running_loop().create_task(gateway.run())
    await asyncio.sleep(0.6)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    texts = systemd.texts()
    assert texts[0] == "READY=1\nSTATUS=0 reading(s) waiting in the outbox; broker not connected"
    assert len(systemd.pings()) >= 3
    assert "WATCHDOG=1\nSTATUS=0 reading(s) waiting in the outbox; broker not connected" in texts
    assert texts[-1] == "STOPPING=1\nSTATUS=stopping"


def test_the_shipped_unit_is_type_notify_with_a_watchdog_and_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    shipped = (Path(__file__).parent.parent / "systemd" / "dho-gateway.service").read_text()
    assert "\nType=notify\n" in shipped and "\nWatchdogSec=30\n" in shipped and "\nNotifyAccess=main\n" in shipped
    # verify checks that ExecStart exists: point it at this checkout's command.
    unit = tmp_path / "dho-gateway.service"
    command = str(Path(sys.executable).parent / "dho-gateway")
    unit.write_text(shipped.replace("/opt/dho-gateway/bin/dho-gateway", command))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_service_as_systemd_runs_it_ready_pings_stops_pinging_when_frozen_and_says_stopping(
    tmp_path: Path, systemd: NotifySocket
) -> None:
    """`dho-gateway run` in its own process, as the unit starts it: SIGSTOP freezes it the way a hung
    process looks to systemd, and the pings must stop until it runs again."""
    import signal
    import subprocess
    import sys

    from tests.support import ROOT, config_for

    config = config_for(tmp_path, 1)  # no broker listens on port 1: the gateway runs and waits for one
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "400000"}
    service = subprocess.Popen([sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not any(m.startswith("READY=1") for m in systemd.texts()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert systemd.texts() and systemd.texts()[0].startswith("READY=1\nSTATUS=")
        time.sleep(1.0)
        service.send_signal(signal.SIGSTOP)
        frozen_from = time.monotonic()
        time.sleep(1.5)
        frozen_to = time.monotonic()
        service.send_signal(signal.SIGCONT)
        time.sleep(1.0)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=20) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    pings = systemd.pings()
    assert len([t for t in pings if t < frozen_from]) >= 3
    assert not [t for t in pings if frozen_from + 0.3 < t < frozen_to]  # margin: a ping already in flight
    assert [t for t in pings if t > frozen_to]
    assert systemd.texts()[-1] == "STOPPING=1\nSTATUS=stopping"
