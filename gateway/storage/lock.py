"""One process per data directory: an exclusive lock that `run` holds for its life, and that `wipe`,
`outbox salvage` and `kit reissue` take before they change anything.

Two `run`s on one data directory fought over the broker session (each took the other's client id about
every half second), and a `wipe` or `reissue` beside a running gateway deleted files it kept writing
readings into (issue 19.3). The lock is `flock(2)` on a file inside the data directory: the kernel drops
it when the holder dies, so a kill -9 or a power cut never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import GatewayError

# The lock file inside the data directory: it holds only the holder's process id (no patient data), and a
# reissue's wipe leaves it in place while it holds it.
LOCK_NAME = ".lock"


class DataDirBusy(GatewayError):
    """Another process holds this data directory; nothing was changed."""


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, doing: str) -> Iterator[None]:
    """Hold the data directory's lock while the block runs; `doing` names the refused action in the error.

    Raises `DataDirBusy` (one line naming the holder's process id) when another process holds it. A
    directory that does not exist has no process using it: the block runs without a lock.
    """
    if not data_dir.is_dir():
        yield
        return
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise DataDirBusy(
                f"{data_dir}: a dho-gateway process (pid {holder}) is using this data directory; "
                f"stop it first (systemctl stop dho-gateway) before {doing}; nothing changed"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the lock
