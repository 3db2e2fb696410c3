"""systemd supervision: the sd_notify protocol, a few lines over a Unix datagram socket (no library).

systemd (Type=notify) passes the socket in $NOTIFY_SOCKET (a path, or '@name' for the abstract
namespace) and, with WatchdogSec=, the deadline in $WATCHDOG_USEC. The gateway says READY=1 once it
can take readings (outbox open, plan loaded, uplink running), then WATCHDOG=1 at half that deadline
from the event loop itself and only after the outbox answered: a blocked loop or a stuck outbox stops
the pings, and systemd restarts the service. STATUS= carries what `systemctl status` shows; STOPPING=1
is said on the way out. Outside systemd (no $NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


def _socket_address(value: str) -> str | bytes:
    # '@name' is Linux's abstract namespace: a leading NUL byte, no file.
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends sd_notify messages; a missing or vanished socket is logged once, never raised."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        # The latest messages said, for diagnostics and tests; bounded: a watchdog ping every 15 s for a
        # year would otherwise keep 2 million of them.
        self.sent: deque[str] = deque(maxlen=100)
        self._socket: socket.socket | None = None
        self._warned = False
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)  # never wait on systemd from the event loop

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Notifier:
        return cls((env if env is not None else os.environ).get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> bool:
        """One datagram, fields separated by newlines (`READY=1`, `STATUS=...`). True if delivered."""
        if self._socket is None or self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields)
        try:
            self._socket.sendto(message.encode(), _socket_address(self.address))
        except OSError as exc:
            if not self._warned:
                log.warning("systemd notify socket %s: %s", self.address, exc)
                self._warned = True
            return False
        self.sent.append(message)
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self, status: str) -> bool:
        return self.send("WATCHDOG=1", f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. None when
    systemd set no watchdog, or set it for another process ($WATCHDOG_PID)."""
    env = env if env is not None else os.environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000 / 2


@dataclass(frozen=True)
class Health:
    """What one probe found: whether the gateway may say it is alive, and the status line."""

    ok: bool
    status: str


Probe = Callable[[], Awaitable[Health]]


async def keep_watchdog(notifier: Notifier, interval_s: float, probe: Probe) -> None:
    """Ping from the event loop while `probe` answers healthy within the interval.

    The ping being sent *by the loop* is the point: if something blocks the loop, no ping goes out
    and systemd kills and restarts the process after WatchdogSec. A probe that fails or hangs (the
    outbox's disk gone, a locked database) withholds the ping the same way.
    """
    while True:
        try:
            async with asyncio.timeout(interval_s):
                health = await probe()
        except TimeoutError:
            health = Health(False, f"unhealthy: the outbox did not answer within {interval_s:g} s")
        except Exception as exc:  # any failure of the probe is a reason to let systemd act
            health = Health(False, f"unhealthy: {exc}")
        if health.ok:
            notifier.watchdog(health.status)
        else:
            log.error("systemd watchdog ping withheld: %s", health.status)
            notifier.status(health.status)
        await asyncio.sleep(interval_s)
