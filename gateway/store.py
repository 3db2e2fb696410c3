"""The sealed outbox: SQLite in WAL mode, every payload sealed with AES-256-GCM.

A reading is "taken" when `put` returns: its row is committed with synchronous=FULL. The associated
data binds each ciphertext to its record id and key version, so rows cannot be swapped or replayed
under another id. A row that fails authentication is moved to quarantine, never silently dropped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sync.outbox import OutboxEntry

log = logging.getLogger(__name__)

KEY_VERSION = 1
_CANARY = b"dho-gateway outbox key check"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    -- AUTOINCREMENT: a plain rowid reuses the number of a deleted last row, and the sync loop's
    -- cursor (send everything after seq N) would then skip the new reading.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    dedup TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class StoreError(RuntimeError):
    """The outbox cannot be opened as it is; the message says what to do. Nothing was deleted."""


class PutResult(NamedTuple):
    id: str
    new: bool  # False: the same physical measurement was stored before under `id`


def _aad(record_id: str, key_version: int) -> bytes:
    return f"dho-outbox/v1|{record_id}|{key_version}".encode()


class SealedOutbox:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Without a limit the WAL file keeps its high-water size for ever on a small SD card.
            self._db.execute("PRAGMA journal_size_limit=4194304")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"outbox {path} cannot be opened: {exc}") from exc
        self._check_key()

    def _seal(self, record_id: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(record_id, KEY_VERSION))

    def _open(self, record_id: str, key_version: int, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], _aad(record_id, key_version))

    def _check_key(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta VALUES ('key_check', ?)", (self._seal("key_check", _CANARY),)
            )
            return
        try:
            self._open("key_check", KEY_VERSION, bytes(row[0]))
        except InvalidTag:
            raise StoreError(
                f"the key file does not match outbox {self.path}: its readings were sealed with another "
                "key. Restore the right key file; nothing was deleted."
            ) from None

    def put(self, record_id: str, payload: bytes, dedup: str | None = None) -> PutResult:
        """Seal and commit one reading. With `dedup`, a measurement seen before keeps its first id."""
        sealed = self._seal(record_id, payload)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if dedup is not None:
                    row = self._db.execute("SELECT id FROM seen WHERE dedup = ?", (dedup,)).fetchone()
                    if row is not None:
                        self._db.execute("ROLLBACK")
                        return PutResult(str(row[0]), new=False)
                    self._db.execute("INSERT INTO seen VALUES (?, ?, ?)", (dedup, record_id, now))
                self._db.execute(
                    "INSERT INTO outbox (id, key_version, sealed, created) VALUES (?, ?, ?, ?)",
                    (record_id, KEY_VERSION, sealed, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return PutResult(record_id, new=True)

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, key_version, sealed FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        entries = []
        for seq, record_id, key_version, sealed in rows:
            try:
                entries.append(OutboxEntry(seq, record_id, self._open(record_id, key_version, bytes(sealed))))
            except InvalidTag:
                self._quarantine(seq, "authentication failed: the stored record was altered or corrupted")
        return entries

    def _quarantine(self, seq: int, reason: str) -> None:
        log.error("outbox record #%d quarantined: %s", seq, reason)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO quarantine SELECT seq, id, key_version, sealed, ?, ? FROM outbox WHERE seq = ?",
                (reason, time.time(), seq),
            )
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._db.execute("COMMIT")

    def acknowledge(self, ids: Collection[str]) -> list[str]:
        if not ids:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            removed = [
                str(row[0])
                for record_id in ids
                for row in self._db.execute("DELETE FROM outbox WHERE id = ? RETURNING id", (record_id,))
            ]
            self._db.execute("COMMIT")
        return removed

    def depth(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(n)

    def oldest_pending_age_s(self, now: float | None = None) -> float | None:
        with self._lock:
            (oldest,) = self._db.execute("SELECT min(created) FROM outbox").fetchone()
        return None if oldest is None else (now or time.time()) - float(oldest)

    def quarantined(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM quarantine").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
