"""The one SQLite connection to the outbox file that its tables share, the lock around it, and its errors.

The tables (readings, events, history, ...) each hold a reference to the same `Connection`: one
connection means one transaction can span tables (a reading and its history entry commit together),
and one lock serialises every use of it from the threads the gateway reads and writes from.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from gateway.errors import GatewayError
from gateway.storage.interface import OutboxUnavailable

log = logging.getLogger("gateway.storage.outbox")  # the name operators' log filters know


class StoreError(GatewayError):
    """The outbox cannot be opened as it is; the message says what to do. Nothing was deleted."""


class OutboxDamaged(StoreError):
    """The outbox file is too damaged to be opened at all (its schema or its keys cannot be read); the
    message names `dho-gateway outbox salvage`. Nothing was deleted."""


SALVAGE = "`dho-gateway outbox salvage --config PATH` (gateway stopped)"


def is_damage(exc: BaseException) -> bool:
    """Whether SQLite found the file itself damaged (corrupt, not a database, a broken constraint), as
    opposed to a passing condition (disk full, I/O error, locked)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _text(raw: bytes) -> str:
    # A flipped bit in a clear column must not stop a query ("Could not decode to UTF-8"): the value reads
    # back with U+FFFD in it, so it no longer matches its sealed record's associated data and is left out.
    return raw.decode("utf-8", "replace")


class DamageLog:
    """Damage the gateway worked around while using the file (a record left out, a page skipped), kept
    in memory for the status faults; thread-safe."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: dict[str, None] = {}

    def note(self, what: str) -> None:
        """Damage was met: `what` says what was left out or skipped (said once per text)."""
        with self._lock:
            first = what not in self._seen
            self._seen[what] = None
        if first:
            log.error("outbox %s is damaged: %s; the rest keeps going. Run %s", self._path, what, SALVAGE)

    def faults(self) -> list[str]:
        """One status fault per kind of damage met, each naming the fix."""
        with self._lock:
            seen = list(self._seen)
        return [fault(self._path, what) for what in seen]


def read_rows(conn: Connection, sql: str, params: tuple[object, ...], what: str) -> Iterator[tuple[object, ...]]:
    """The rows of a query as far as the file reads (the caller holds the lock): damage ends them early
    and is noted as `what` for the status."""
    try:
        yield from conn.db.execute(sql, params)
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        conn.damage.note(f"{what} ({exc})")


def fault(path: Path, what: str) -> str:
    """The status fault for damage found in the outbox file: what, and what to run."""
    return (f"outbox {path} is damaged: {what}; the gateway works around it, nothing was deleted: "
            f"to recover every readable record run {SALVAGE}")


class Usage(NamedTuple):
    """How much of the outbox file's bound is used (live pages, not free ones), in bytes."""

    used_bytes: int
    limit_bytes: int

    @property
    def percent(self) -> int:
        """The share of the bound in use, 0 to 100."""
        return min(100, self.used_bytes * 100 // self.limit_bytes)


def damaged(path: Path, exc: BaseException | str) -> str:
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


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the outbox file (autocommit) whose text values never fail to decode."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.text_factory = _text
    return db


class Connection:
    """The outbox file's connection in autocommit mode (transactions are explicit), durable on commit
    (WAL, synchronous=FULL), with `lock` held around every use. Opening raises sqlite3 errors as they
    come; the caller says what they mean."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.damage = DamageLog(path)
        self.db = connect(path)
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
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # A damaged page (or schema, whose bytes SQLite's message quotes): the gateway keeps running
            # (readings wait in memory), the fault says what to do.
            self.damage.note(f"it cannot {doing}: {exc}")
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
