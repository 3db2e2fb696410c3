"""The sealed outbox: SQLite in WAL mode, every payload sealed with AES-256-GCM.

A reading is "taken" when `put` returns: its row is committed with synchronous=FULL. The associated
data binds each ciphertext to its record id and key version, so rows cannot be swapped or replayed
under another id. A row that fails authentication is moved to quarantine, never silently dropped.

Keys: records are sealed with a random data key; data keys are stored wrapped by the key-encryption
key (KEK) from the provisioned secret. Rotation adds a data key version: new records use it, older
records stay readable until drained, then `retire_unused_keys` forgets their key.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import GatewayError
from sync.outbox import OutboxEntry, OutboxUnavailable

log = logging.getLogger(__name__)

_SCHEMA = """
-- Data keys, each wrapped (AES-256-GCM) by the key-encryption key from the provisioned secret.
CREATE TABLE IF NOT EXISTS data_keys (version INTEGER PRIMARY KEY, wrapped BLOB NOT NULL, created REAL NOT NULL);
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
-- What zoning needs of earlier readings (values, time, zone) for trends, kept after the ack, pruned by age.
CREATE TABLE IF NOT EXISTS history (
    id TEXT PRIMARY KEY,
    effective REAL NOT NULL,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_time ON history (effective);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
-- A shared scale's weighing whose user the scale could not tell: sealed until the patient answers
-- "was this you?" (yes: it becomes a reading; no: it is deleted).
CREATE TABLE IF NOT EXISTS unassigned (
    id TEXT PRIMARY KEY,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
"""


class StoreError(GatewayError):
    """The outbox cannot be opened as it is; the message says what to do. Nothing was deleted."""


class Usage(NamedTuple):
    used_bytes: int
    limit_bytes: int

    @property
    def percent(self) -> int:
        return min(100, self.used_bytes * 100 // self.limit_bytes)


QuarantineListener = Callable[[int, str], None]


class PutResult(NamedTuple):
    id: str
    new: bool  # False: the same physical measurement was stored before under `id`


def _aad(record_id: str, key_version: int) -> bytes:
    return f"dho-outbox/v1|{record_id}|{key_version}".encode()


def _history_aad(record_id: str, key_version: int) -> bytes:
    return f"dho-history/v1|{record_id}|{key_version}".encode()


def _unassigned_aad(record_id: str, key_version: int) -> bytes:
    return f"dho-unassigned/v1|{record_id}|{key_version}".encode()


def _key_aad(version: int) -> bytes:
    return f"dho-outbox/v1|data-key|{version}".encode()


class SealedOutbox:
    """`max_bytes` bounds the file: past it, `put` raises OutboxUnavailable exactly as on a full disk
    (nothing stored is touched, acknowledged records still leave and free room)."""

    def __init__(self, path: Path, kek: bytes, *, max_bytes: int | None = None) -> None:
        self.path = path
        # Called (from whichever thread read the record) with its seq and the reason.
        self.on_quarantine: QuarantineListener | None = None
        self._kek = AESGCM(kek)
        self._keys: dict[int, AESGCM] = {}
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Without a limit the WAL file keeps its high-water size for ever on a small SD card.
            self._db.execute("PRAGMA journal_size_limit=4194304")
            self._db.execute("PRAGMA secure_delete=ON")  # deleted key material is overwritten in the file
            self._db.executescript(_SCHEMA)
            if max_bytes is not None:
                (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
                # SQLite never lowers the limit below the file's present size, so a smaller bound on an
                # existing outbox takes effect as acknowledged records free pages.
                self._db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // int(page_size))}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"outbox {path} cannot be opened: {exc}") from exc
        self._load_keys()

    def _load_keys(self) -> None:
        rows = self._db.execute("SELECT version, wrapped FROM data_keys").fetchall()
        for version, wrapped in rows:
            try:
                blob = bytes(wrapped)
                self._keys[int(version)] = AESGCM(self._kek.decrypt(blob[:12], blob[12:], _key_aad(int(version))))
            except InvalidTag:
                raise StoreError(
                    f"the key file does not match outbox {self.path}: its readings were sealed under another "
                    "key. Restore the right key file; nothing was deleted."
                ) from None
        if not self._keys:
            self.rotate()

    @property
    def key_version(self) -> int:
        return max(self._keys)

    def rotate(self) -> int:
        """Start a new data key; returns its version. Older records stay readable with their own key."""
        data_key = AESGCM.generate_key(bit_length=256)
        with self._lock:
            version = max(self._keys, default=0) + 1
            nonce = os.urandom(12)
            wrapped = nonce + self._kek.encrypt(nonce, data_key, _key_aad(version))
            self._db.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (version, wrapped, time.time()))
            self._keys[version] = AESGCM(data_key)
        return version

    def retire_unused_keys(self) -> list[int]:
        """Forget data keys (other than the current one) that no stored or quarantined record needs."""
        with self._lock:
            current = max(self._keys)
            in_use = {int(v) for (v,) in self._db.execute(
                "SELECT key_version FROM outbox UNION SELECT key_version FROM quarantine "
                "UNION SELECT key_version FROM history UNION SELECT key_version FROM unassigned")}
            retired = [v for v in self._keys if v != current and v not in in_use]
            for version in retired:
                self._db.execute("DELETE FROM data_keys WHERE version = ?", (version,))
                del self._keys[version]
        return retired

    def _seal(self, record_id: str, plaintext: bytes) -> tuple[int, bytes]:
        version = max(self._keys)
        nonce = os.urandom(12)
        return version, nonce + self._keys[version].encrypt(nonce, plaintext, _aad(record_id, version))

    def _open(self, record_id: str, key_version: int, sealed: bytes) -> bytes:
        key = self._keys.get(key_version)
        if key is None:
            raise InvalidTag  # a record whose key was retired or never existed cannot be authentic
        return key.decrypt(sealed[:12], sealed[12:], _aad(record_id, key_version))

    def put(
        self, record_id: str, payload: bytes, dedup: str | None = None, remember: tuple[float, bytes] | None = None
    ) -> PutResult:
        """Seal and commit one reading. With `dedup`, a measurement seen before keeps its first id.
        With `remember` (effective time, bytes), its history entry is committed in the same transaction.

        Raises OutboxUnavailable when the disk is full or failing; the reading was not stored."""
        try:
            return self._put(record_id, payload, dedup, remember)
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot store a reading: {exc}") from exc

    def _put(
        self, record_id: str, payload: bytes, dedup: str | None, remember: tuple[float, bytes] | None
    ) -> PutResult:
        key_version, sealed = self._seal(record_id, payload)
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
                    (record_id, key_version, sealed, now),
                )
                if remember is not None:
                    nonce = os.urandom(12)
                    kept = nonce + self._keys[key_version].encrypt(
                        nonce, remember[1], _history_aad(record_id, key_version))
                    self._db.execute("INSERT INTO history VALUES (?, ?, ?, ?)",
                                     (record_id, remember[0], key_version, kept))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    self._db.execute("ROLLBACK")
                raise
        return PutResult(record_id, new=True)

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        try:
            return self._pending(after_seq, limit)
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot be read: {exc}") from exc

    def _pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
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
            try:
                self._db.execute(
                    "INSERT INTO quarantine SELECT seq, id, key_version, sealed, ?, ? FROM outbox WHERE seq = ?",
                    (reason, time.time(), seq),
                )
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        if self.on_quarantine is not None:
            self.on_quarantine(seq, reason)

    def acknowledge(self, ids: Collection[str]) -> list[str]:
        try:
            return self._acknowledge(ids)
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot delete acknowledged readings: {exc}") from exc

    def _acknowledge(self, ids: Collection[str]) -> list[str]:
        if not ids:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = [
                    str(row[0])
                    for record_id in ids
                    for row in self._db.execute("DELETE FROM outbox WHERE id = ? RETURNING id", (record_id,))
                ]
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    self._db.execute("ROLLBACK")
                raise
        return removed

    def depth(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(n)

    def oldest_pending_age_s(self, now: float | None = None) -> float | None:
        with self._lock:
            (oldest,) = self._db.execute("SELECT min(created) FROM outbox").fetchone()
        return None if oldest is None else (now or time.time()) - float(oldest)

    def recall(self, since: float) -> list[bytes]:
        """History entries with an effective time from `since` on, oldest first. One that fails
        authentication is left out and logged: a trend then misses one point, nothing else."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key_version, sealed FROM history WHERE effective >= ? ORDER BY effective", (since,)
            ).fetchall()
        entries = []
        for record_id, key_version, sealed in rows:
            key, blob = self._keys.get(int(key_version)), bytes(sealed)
            try:
                if key is None:
                    raise InvalidTag
                entries.append(key.decrypt(blob[:12], blob[12:], _history_aad(str(record_id), int(key_version))))
            except InvalidTag:
                log.error("history entry %s failed authentication and is left out", record_id)
        return entries

    def first_history_time(self) -> float | None:
        """When the earliest kept reading was taken (the time is stored in clear for pruning anyway)."""
        with self._lock:
            (first,) = self._db.execute("SELECT min(effective) FROM history").fetchone()
        return None if first is None else float(first)

    def forget_before(self, cutoff: float) -> int:
        """Drop history older than `cutoff` (zoning looks back 90 days at most)."""
        try:
            with self._lock:
                return self._db.execute("DELETE FROM history WHERE effective < ?", (cutoff,)).rowcount
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot prune its history: {exc}") from exc

    def park(self, record_id: str, payload: bytes, keep: int) -> bool:
        """Seal a weighing that waits for the patient's answer; False if `record_id` waits already.
        At most `keep` wait: the oldest beyond that is deleted (it was never the patient's reading yet).

        Raises OutboxUnavailable when the disk is full or failing."""
        key_version = max(self._keys)
        nonce = os.urandom(12)
        sealed = nonce + self._keys[key_version].encrypt(nonce, payload, _unassigned_aad(record_id, key_version))
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    added = self._db.execute(
                        "INSERT OR IGNORE INTO unassigned VALUES (?, ?, ?, ?)",
                        (record_id, key_version, sealed, time.time())).rowcount == 1
                    self._db.execute(
                        "DELETE FROM unassigned WHERE id NOT IN "
                        "(SELECT id FROM unassigned ORDER BY created DESC, rowid DESC LIMIT ?)", (keep,))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot keep a weighing to confirm: {exc}") from exc
        return added

    def parked(self) -> list[tuple[str, bytes]]:
        """The weighings waiting for the patient's answer, oldest first. One that fails authentication
        is left out and logged: it is never shown or confirmed."""
        with self._lock:
            rows = self._db.execute("SELECT id, key_version, sealed FROM unassigned ORDER BY created, rowid").fetchall()
        out = []
        for record_id, key_version, sealed in rows:
            key, blob = self._keys.get(int(key_version)), bytes(sealed)
            try:
                if key is None:
                    raise InvalidTag
                out.append((str(record_id), key.decrypt(blob[:12], blob[12:],
                                                        _unassigned_aad(str(record_id), int(key_version)))))
            except InvalidTag:
                log.error("unassigned weighing %s failed authentication and is left out", record_id)
        return out

    def unpark(self, record_id: str) -> bool:
        """Delete a waiting weighing (answered); False if it was not waiting."""
        try:
            with self._lock:
                return self._db.execute("DELETE FROM unassigned WHERE id = ?", (record_id,)).rowcount == 1
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot record the answer: {exc}") from exc

    def usage(self) -> Usage:
        with self._lock:
            (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
            (limit,) = self._db.execute("PRAGMA max_page_count").fetchone()
        return Usage((int(pages) - int(free)) * int(page_size), int(limit) * int(page_size))

    def quarantined(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM quarantine").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
