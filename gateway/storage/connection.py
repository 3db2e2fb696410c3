"""The one SQLite connection to the outbox file that its tables share, the lock around it, and its errors.

The tables (readings, events, history, ...) each hold a reference to the same `Connection`: one
connection means one transaction can span tables (a reading and its history entry commit together),
and one lock serialises every use of it from the threads the gateway reads and writes from.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from gateway.errors import GatewayError
from gateway.storage.interface import OutboxUnavailable


class StoreError(GatewayError):
    """The outbox cannot be opened as it is; the message says what to do. Nothing was deleted."""


class Usage(NamedTuple):
    """How much of the outbox file's bound is used (live pages, not free ones), in bytes."""

    used_bytes: int
    limit_bytes: int

    @property
    def percent(self) -> int:
        """The share of the bound in use, 0 to 100."""
        return min(100, self.used_bytes * 100 // self.limit_bytes)


def damaged(path: Path, exc: BaseException) -> str:
    """The message for an outbox file SQLite finds damaged: what to run, and that nothing was deleted."""
    return (f"outbox {path} is damaged ({exc}); nothing was deleted: stop the gateway and run "
            "`dho-gateway outbox salvage --config PATH` to copy every readable record into a new outbox")


def make_private(folder: Path) -> None:
    """The data directory and everything SQLite will put in it: owner-only, whatever the umask."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


def private_file(path: Path) -> None:
    """Create the outbox file 0600 if it is missing, and take group and other access from it and its
    -wal and -shm files."""
    # SQLite gives -wal and -shm the mode of the database file: a 0600 database keeps them 0600 too.
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_mode & 0o077:
            p.chmod(0o600)


class Connection:
    """The outbox file's connection in autocommit mode (transactions are explicit), durable on commit
    (WAL, synchronous=FULL), with `lock` held around every use. Opening raises sqlite3 errors as they
    come; the caller says what they mean."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        # Without a limit the WAL file keeps its high-water size for ever on a small SD card.
        self.db.execute("PRAGMA journal_size_limit=4194304")
        self.db.execute("PRAGMA secure_delete=ON")  # deleted key material is overwritten in the file

    def bound(self, max_bytes: int) -> None:
        """Let the file grow to about `max_bytes`; past it, writes fail as on a full disk."""
        (page_size,) = self.db.execute("PRAGMA page_size").fetchone()
        # SQLite never lowers the limit below the file's present size, so a smaller bound on an
        # existing outbox takes effect as acknowledged records free pages.
        self.db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // int(page_size))}")

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """SQLite and OS errors in the block become OutboxUnavailable saying what could not be done
        (`doing`), and for a damaged file what to run."""
        try:
            yield
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot {doing}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            # A damaged page: the gateway keeps running (readings wait in memory), the fault says what to do.
            raise OutboxUnavailable(damaged(self.path, exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and run the block in one write transaction: committed if the block returns
        (unless it rolled back itself), rolled back if it raises."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                if self.db.in_transaction:  # not when the body chose to roll back
                    self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    self.db.execute("ROLLBACK")
                raise

    def usage(self) -> Usage:
        """Bytes in use and the bound (the lock held; the caller guards)."""
        with self.lock:
            (page_size,) = self.db.execute("PRAGMA page_size").fetchone()
            (pages,) = self.db.execute("PRAGMA page_count").fetchone()
            (free,) = self.db.execute("PRAGMA freelist_count").fetchone()
            (limit,) = self.db.execute("PRAGMA max_page_count").fetchone()
        return Usage((int(pages) - int(free)) * int(page_size), int(limit) * int(page_size))

    def close(self) -> None:
        """Close the connection once no one uses it."""
        with self.lock:
            self.db.close()
