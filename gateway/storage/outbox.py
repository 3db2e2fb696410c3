"""The sealed outbox: SQLite in WAL mode, every payload sealed with AES-256-GCM.

A reading is "taken" when `put` returns: its row is committed with synchronous=FULL. The associated
data binds each ciphertext to its record id and key version, so rows cannot be swapped or replayed
under another id. A row that fails authentication is moved to quarantine, never silently dropped.

Keys: records are sealed with a random data key; data keys are stored wrapped by the key-encryption
key (KEK) from the provisioned secret. Rotation adds a data key version: new records use it, older
records stay readable until drained, then `retire_unused_keys` forgets their key. What the store must
find without opening a record (a measurement seen before, the history of one kind) it finds by keyed
tags (HMAC-SHA256 under a tag key, wrapped by the KEK and destroyed by the wipe like the data keys).
What stays in clear, and why, is in docs/decisions/0003-what-is-stored-in-clear.md.

Bytes written per reading (issue 10.6): a reading touches two b-trees, the outbox table (appended in
id order, no index: the sequence number is derived from the UUIDv7 id) and the history table
(clustered by kind and time, so it is appended at the end of its kind's range). Start-up and the
health check read counters and index ends, never the whole file (issue 10.5).
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import GatewayError
from gateway.storage.interface import OutboxEntry, OutboxUnavailable
from gateway.storage.migrate import migrate
from gateway.storage.schema import SCHEMA, SCHEMA_VERSION, seq_of
from gateway.storage.sealing import (
    dedup_tag,
    document_aad,
    event_aad,
    history_aad,
    kind_tag,
    outbox_aad,
    seal,
    unassigned_aad,
    unseal,
    unwrap_data_key,
    unwrap_tag_key,
    wrap_data_key,
    wrap_tag_key,
)

log = logging.getLogger(__name__)

_NO_KIND = ""  # the kind tag of an entry that only remembers a dedup tag

_Table = Literal["outbox", "events"]
_PENDING: dict[_Table, str] = {
    "outbox": "SELECT seq, id, key_version, sealed FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
    "events": "SELECT seq, id, key_version, sealed FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
}
_QUARANTINE: dict[_Table, str] = {
    "outbox": "INSERT OR REPLACE INTO quarantine SELECT seq, id, key_version, sealed, ?, ? FROM outbox WHERE seq = ?",
    "events": "INSERT OR REPLACE INTO quarantine SELECT seq, id, key_version, sealed, ?, ? FROM events WHERE seq = ?",
}
_DROP: dict[_Table, str] = {
    "outbox": "DELETE FROM outbox WHERE seq = ?",
    "events": "DELETE FROM events WHERE seq = ?",
}


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


class Remember(NamedTuple):
    """A history entry committed with its reading: kind (tagged), effective time, plaintext."""

    kind: str
    effective: float
    entry: bytes


def damaged(path: Path, exc: BaseException) -> str:
    return (f"outbox {path} is damaged ({exc}); nothing was deleted: stop the gateway and run "
            "`dho-gateway outbox salvage --config PATH` to copy every readable record into a new outbox")


def make_private(folder: Path) -> None:
    """The data directory and everything SQLite will put in it: owner-only, whatever the umask."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


def _private_file(path: Path) -> None:
    # SQLite gives -wal and -shm the mode of the database file: a 0600 database keeps them 0600 too.
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_mode & 0o077:
            p.chmod(0o600)


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
        self._tags: dict[str, int] = {}
        try:
            make_private(path.parent)
            _private_file(path)
        except OSError as exc:
            raise StoreError(f"outbox {path} cannot be created: {exc.strerror or exc}") from None
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Without a limit the WAL file keeps its high-water size for ever on a small SD card.
            self._db.execute("PRAGMA journal_size_limit=4194304")
            self._db.execute("PRAGMA secure_delete=ON")  # deleted key material is overwritten in the file
            migrate(self._db, kek, SCHEMA_VERSION, SCHEMA)
            if max_bytes is not None:
                (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
                # SQLite never lowers the limit below the file's present size, so a smaller bound on an
                # existing outbox takes effect as acknowledged records free pages.
                self._db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // int(page_size))}")
            self._load_keys()
            self._quarantined = int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
            (high,) = self._db.execute("SELECT max(seq) FROM outbox").fetchone()
            self._high = int(high or 0)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"outbox {path} cannot be opened: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged(path, exc)) from exc
        _private_file(path)
        # The depth is counted once, then kept by put/acknowledge: the 5 s health check reads a counter.
        # Counting reads every page of the table (seconds at a million readings), so it runs beside
        # start-up on its own connection, in a snapshot taken now; what changes meanwhile is added to it.
        self._depth = 0
        self._depth_lock = threading.Lock()
        self._counted = threading.Event()
        self._count_error: BaseException | None = None
        try:
            counter = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            counter.execute("BEGIN")
            counter.execute("SELECT 1 FROM outbox LIMIT 1").fetchall()  # the snapshot starts here
        except sqlite3.OperationalError as exc:
            raise StoreError(f"outbox {path} cannot be opened: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged(path, exc)) from exc
        threading.Thread(target=self._count, args=(counter,), name="outbox-count", daemon=True).start()

    def _count_change(self, change: int) -> None:
        with self._depth_lock:
            self._depth += change

    def _count(self, counter: sqlite3.Connection) -> None:
        try:
            (n,) = counter.execute("SELECT count(*) FROM outbox").fetchone()
            self._count_change(int(n))
        except sqlite3.DatabaseError as exc:
            self._count_error = exc
        finally:
            counter.close()
            self._counted.set()

    def _load_keys(self) -> None:
        rows = self._db.execute("SELECT version, wrapped FROM data_keys").fetchall()
        for version, wrapped in rows:
            try:
                self._keys[int(version)] = unwrap_data_key(self._kek, bytes(wrapped), int(version))
            except InvalidTag:
                raise StoreError(
                    f"the key file does not match outbox {self.path}: its readings were sealed under another "
                    "key. Restore the right key file; nothing was deleted."
                ) from None
        if not self._keys:
            self.rotate()
        row = self._db.execute("SELECT wrapped FROM tag_key").fetchone()
        if row is None:
            self.adopt_tag_key(os.urandom(32))
        else:
            try:
                self._tag_key = unwrap_tag_key(self._kek, bytes(row[0]))
            except InvalidTag:
                raise StoreError(f"the tag key in outbox {self.path} does not open with this key file; "
                                 "nothing was deleted") from None

    def adopt_tag_key(self, tag_key: bytes) -> None:
        """Use this tag key (a new outbox, or one salvaged from a damaged file keeps its tags)."""
        wrapped = wrap_tag_key(self._kek, tag_key)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO tag_key VALUES (1, ?)", (wrapped,))
            self._tag_key = tag_key
            self._tags.clear()

    @property
    def tag_key(self) -> bytes:
        return self._tag_key

    def kind_tag(self, kind: str) -> int:
        tag = self._tags.get(kind)
        if tag is None:
            tag = self._tags[kind] = kind_tag(self._tag_key, kind)
        return tag

    def dedup_tag(self, material: bytes | str) -> int:
        return dedup_tag(self._tag_key, material)

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.OperationalError, OSError) as exc:
            raise OutboxUnavailable(f"outbox {self.path} cannot {doing}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            # A damaged page: the gateway keeps running (readings wait in memory), the fault says what to do.
            raise OutboxUnavailable(damaged(self.path, exc)) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                if self._db.in_transaction:  # not when the body chose to roll back
                    self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    self._db.execute("ROLLBACK")
                raise

    @property
    def key_version(self) -> int:
        return max(self._keys)

    def rotate(self) -> int:
        """Start a new data key; returns its version. Older records stay readable with their own key."""
        data_key = AESGCM.generate_key(bit_length=256)
        with self._lock:
            version = max(self._keys, default=0) + 1
            wrapped = wrap_data_key(self._kek, data_key, version)
            self._db.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (version, wrapped, time.time()))
            self._keys[version] = AESGCM(data_key)
        return version

    def retire_unused_keys(self) -> list[int]:
        """Forget data keys (other than the current one) that no stored or quarantined record needs."""
        with self._lock:
            current = max(self._keys)
            in_use = {int(v) for (v,) in self._db.execute(
                "SELECT key_version FROM outbox UNION SELECT key_version FROM quarantine "
                "UNION SELECT key_version FROM events UNION SELECT key_version FROM documents "
                "UNION SELECT key_version FROM unassigned "
                "UNION SELECT key_version FROM history WHERE key_version IS NOT NULL")}
            retired = [v for v in self._keys if v != current and v not in in_use]
            for version in retired:
                self._db.execute("DELETE FROM data_keys WHERE version = ?", (version,))
                del self._keys[version]
        return retired

    def _seal(self, plaintext: bytes, aad: Callable[[int], bytes]) -> tuple[int, bytes]:
        version = max(self._keys)
        return version, seal(self._keys[version], plaintext, aad(version))

    def _unseal(self, key_version: int, sealed: bytes, aad: bytes) -> bytes:
        key = self._keys.get(key_version)
        if key is None:
            raise InvalidTag  # a record whose key was retired or never existed cannot be authentic
        return unseal(key, sealed, aad)

    def _next_seq(self, record_id: str) -> tuple[int, bool]:
        """(seq, renumbered). Never at or below one handed out before by this process (the sync loop's
        cursor sends "everything after N"); a restart starts its cursor at 0."""
        own = seq_of(record_id)
        if own is not None and own > self._high:
            return own, False
        return self._high + 1, True

    def put(
        self, record_id: str, payload: bytes, dedup: bytes | str | None = None,
        remember: Remember | tuple[str, float, bytes] | None = None,
    ) -> PutResult:
        """Seal and commit one reading. With `dedup` (what identifies the physical measurement: device,
        characteristic, bytes), a measurement seen before keeps its first id; only its keyed tag is kept.
        With `remember` (kind, effective time, bytes), its history entry is committed in the same transaction.

        Raises OutboxUnavailable when the disk is full or failing; the reading was not stored."""
        with self._guard("store a reading"):
            return self._put(record_id, payload, dedup, Remember(*remember) if remember is not None else None)

    def _put(self, record_id: str, payload: bytes, dedup: bytes | str | None, remember: Remember | None) -> PutResult:
        key_version, sealed = self._seal(payload, lambda v: outbox_aad(record_id, v))
        now = time.time()
        kind = self.kind_tag(remember.kind if remember is not None else _NO_KIND)
        tag = None if dedup is None else self.dedup_tag(dedup)
        with self._transaction():
            if tag is not None:
                row = self._db.execute("SELECT id FROM history WHERE kind = ? AND dedup = ?", (kind, tag)).fetchone()
                if row is not None:
                    self._db.execute("ROLLBACK")
                    return PutResult(str(row[0]), new=False)
            seq, renumbered = self._next_seq(record_id)
            if renumbered:
                self._db.execute("INSERT INTO renumbered VALUES (?, ?)", (record_id, seq))
            self._db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)", (seq, record_id, key_version, sealed, now))
            if remember is not None:
                effective = float(remember.effective)
                hv, kept = self._seal(remember.entry, lambda v: history_aad(record_id, kind, effective, seq, v))
                self._db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (kind, effective, seq, record_id, tag, hv, kept))
            elif tag is not None:
                self._db.execute("INSERT INTO history VALUES (?, 0.0, ?, ?, ?, NULL, NULL)",
                                 (kind, seq, record_id, tag))
        self._high = seq
        self._count_change(+1)
        return PutResult(record_id, new=True)

    def restore_history(self, entries: Iterable[tuple[int, str, int, float, int | None, bytes | None]]) -> None:
        """Salvage: history entries (seq, id, kind tag, effective, dedup tag, plaintext or None) as they were."""
        with self._guard("restore its history"), self._transaction():
            for seq, record_id, kind, effective, tag, entry in entries:
                if entry is None:
                    self._db.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                                     (kind, effective, seq, record_id, tag))
                    continue
                hv, kept = self._seal(entry, functools.partial(history_aad, record_id, kind, effective, seq))
                self._db.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (kind, effective, seq, record_id, tag, hv, kept))

    def put_event(self, event_id: str, payload: bytes) -> None:
        """Seal and commit one event (up/events); it leaves when the central service acks its id.
        Storing the same event id again changes nothing."""
        key_version, sealed = self._seal(payload, lambda v: event_aad(event_id, v))
        with self._guard("store an event"), self._transaction():
            self._db.execute("INSERT OR IGNORE INTO events (id, key_version, sealed, created) VALUES (?, ?, ?, ?)",
                             (event_id, key_version, sealed, time.time()))

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        with self._guard("be read"):
            return self._pending("outbox", outbox_aad, after_seq, limit)

    def pending_events(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged events with seq > after_seq, oldest first."""
        with self._guard("be read"):
            return self._pending("events", event_aad, after_seq, limit)

    def _pending(
        self, table: _Table, aad: Callable[[str, int], bytes], after_seq: int, limit: int
    ) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(_PENDING[table], (after_seq, limit)).fetchall()
        entries = []
        for seq, record_id, key_version, sealed in rows:
            try:
                plain = self._unseal(key_version, bytes(sealed), aad(record_id, key_version))
                entries.append(OutboxEntry(seq, record_id, plain))
            except InvalidTag:
                self._quarantine(table, seq, "authentication failed: the stored record was altered or corrupted")
        return entries

    def _quarantine(self, table: _Table, seq: int, reason: str) -> None:
        log.error("outbox record #%d quarantined: %s", seq, reason)
        with self._transaction():
            self._db.execute(_QUARANTINE[table], (reason, time.time(), seq))
            self._db.execute(_DROP[table], (seq,))
        if table == "outbox":
            self._count_change(-1)
        self._quarantined += 1
        if self.on_quarantine is not None:
            self.on_quarantine(seq, reason)

    def acknowledge(self, ids: Collection[str]) -> list[str]:
        """Delete these readings or events for good; returns the ids that were still there."""
        with self._guard("delete acknowledged readings"):
            return self._acknowledge(ids)

    def _acknowledge(self, ids: Collection[str]) -> list[str]:
        if not ids:
            return []
        removed: list[str] = []
        readings = 0
        with self._transaction():
            for record_id in ids:
                seq = seq_of(record_id)
                row = None if seq is None else self._db.execute(
                    "DELETE FROM outbox WHERE seq = ? AND id = ? RETURNING id", (seq, record_id)).fetchone()
                if row is None:
                    moved = self._db.execute(
                        "DELETE FROM renumbered WHERE id = ? RETURNING seq", (record_id,)).fetchone()
                    if moved is not None:
                        row = self._db.execute("DELETE FROM outbox WHERE seq = ? AND id = ? RETURNING id",
                                               (moved[0], record_id)).fetchone()
                if row is not None:
                    readings += 1
                else:
                    row = self._db.execute("DELETE FROM events WHERE id = ? RETURNING id", (record_id,)).fetchone()
                if row is not None:
                    removed.append(str(row[0]))
        self._count_change(-readings)
        return removed

    def depth(self) -> int:
        """Readings waiting for the central service's ack (a counter: no scan; blocks only until the
        count made at start-up is done)."""
        self._counted.wait()
        if isinstance(self._count_error, sqlite3.OperationalError):
            raise OutboxUnavailable(f"outbox {self.path} cannot be counted: {self._count_error}")
        if self._count_error is not None:
            raise StoreError(damaged(self.path, self._count_error))
        return int(self._depth)

    def oldest_pending_age_s(self, now: float | None = None) -> float | None:
        with self._guard("be read"), self._lock:
            row = self._db.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (now or time.time()) - float(row[0])

    def recall(self, kind: str, *, since: float, until: float, at_least: int = 0, limit: int = 5000) -> list[bytes]:
        """History entries of `kind` with an effective time in [since, until], and at least the latest
        `at_least` up to `until` whatever their age; oldest first, never more than `limit` (the latest).
        One that fails authentication is left out and logged: a trend then misses one point, nothing else."""
        tag = self.kind_tag(kind)
        entries: list[bytes] = []
        with self._guard("read its history"), self._lock:
            rows = self._db.execute(
                "SELECT effective, seq, id, key_version, kept FROM history WHERE kind = ? AND effective <= ? "
                "AND kept IS NOT NULL ORDER BY effective DESC", (tag, until))
            for effective, seq, record_id, key_version, kept in rows:
                if (effective < since and len(entries) >= at_least) or len(entries) >= limit:
                    break
                try:
                    entries.append(self._unseal(int(key_version), bytes(kept), history_aad(
                        str(record_id), tag, float(effective), int(seq), int(key_version))))
                except InvalidTag:
                    log.error("history entry %s failed authentication and is left out", record_id)
            rows.close()
        entries.reverse()
        return entries

    def latest_effective(self, kind: str) -> float | None:
        """The effective time of the latest kept reading of `kind` (the end of its index range)."""
        with self._guard("read its history"), self._lock:
            # Entries without `kept` (dedup only) never carry a real kind's tag: the index end is the answer.
            row = self._db.execute("SELECT effective FROM history WHERE kind = ? ORDER BY effective DESC LIMIT 1",
                                   (self.kind_tag(kind),)).fetchone()
        return None if row is None else float(row[0])

    def first_history_time(self, kinds: Iterable[str]) -> float | None:
        """When the earliest kept reading of these kinds was taken (one index lookup per kind)."""
        firsts = []
        with self._guard("read its history"), self._lock:
            for kind in kinds:
                row = self._db.execute("SELECT effective FROM history WHERE kind = ? ORDER BY effective LIMIT 1",
                                       (self.kind_tag(kind),)).fetchone()
                if row is not None:
                    firsts.append(float(row[0]))
        return min(firsts, default=None)

    def forget_stored_before(self, cutoff: float) -> int:
        """Drop history STORED before `cutoff` (gateway clock; zoning looks back 90 days at most). The
        time a reading claims plays no part: a record dated 2052 cannot make the real history "old"."""
        with self._guard("prune its history"), self._lock:
            return self._db.execute("DELETE FROM history WHERE seq < ?", (int(cutoff * 1000) << 16,)).rowcount

    def keep_document(self, kind: str, version: int, body: bytes) -> None:
        """Seal and commit a signed document the gateway accepted (a plan, a trust store) before it is
        used, so a restart comes back with it. Raises OutboxUnavailable when it cannot be written."""
        with self._guard(f"keep the {kind}"), self._lock:
            key_version, sealed = self._seal(body, lambda v: document_aad(kind, version, v))
            self._db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)",
                             (kind, version, key_version, sealed, time.time()))

    def latest_document(self, kind: str) -> tuple[int, bytes] | None:
        """The newest authentic document of this kind (version, body); one that fails authentication is
        logged and passed over, so an older accepted one is used rather than none."""
        with self._guard(f"read the {kind}"), self._lock:
            rows = self._db.execute(
                "SELECT version, key_version, sealed FROM documents WHERE kind = ? ORDER BY version DESC", (kind,)
            ).fetchall()
        for version, key_version, sealed in rows:
            try:
                return int(version), self._unseal(int(key_version), bytes(sealed),
                                                  document_aad(kind, int(version), int(key_version)))
            except InvalidTag:
                log.error("stored %s version %d failed authentication and is passed over", kind, version)
        return None

    def park(self, record_id: str, payload: bytes, keep: int) -> bool:
        """Seal a weighing that waits for the patient's answer; False if `record_id` waits already.
        At most `keep` wait: the oldest beyond that is deleted (it was never the patient's reading yet).

        Raises OutboxUnavailable when the disk is full or failing."""
        with self._guard("keep a weighing to confirm"), self._transaction():
            key_version, sealed = self._seal(payload, lambda v: unassigned_aad(record_id, v))
            added = self._db.execute("INSERT OR IGNORE INTO unassigned VALUES (?, ?, ?, ?)",
                                     (record_id, key_version, sealed, time.time())).rowcount == 1
            self._db.execute("DELETE FROM unassigned WHERE id NOT IN "
                             "(SELECT id FROM unassigned ORDER BY created DESC, rowid DESC LIMIT ?)", (keep,))
        return bool(added)

    def parked(self) -> list[tuple[str, bytes]]:
        """The weighings waiting for the patient's answer, oldest first. One that fails authentication
        is left out and logged: it is never shown or confirmed."""
        with self._guard("read the weighings to confirm"), self._lock:
            rows = self._db.execute("SELECT id, key_version, sealed FROM unassigned ORDER BY created, rowid").fetchall()
        out = []
        for record_id, key_version, sealed in rows:
            try:
                out.append((str(record_id), self._unseal(int(key_version), bytes(sealed),
                                                         unassigned_aad(str(record_id), int(key_version)))))
            except InvalidTag:
                log.error("unassigned weighing %s failed authentication and is left out", record_id)
        return out

    def unpark(self, record_id: str) -> bool:
        """Delete a waiting weighing (answered); False if it was not waiting."""
        with self._guard("record the answer"), self._lock:
            return bool(self._db.execute("DELETE FROM unassigned WHERE id = ?", (record_id,)).rowcount == 1)

    def usage(self) -> Usage:
        with self._guard("be measured"), self._lock:
            (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
            (limit,) = self._db.execute("PRAGMA max_page_count").fetchone()
        return Usage((int(pages) - int(free)) * int(page_size), int(limit) * int(page_size))

    def quarantined(self) -> int:
        return int(self._quarantined)

    def close(self) -> None:
        with self._lock:
            self._db.close()
