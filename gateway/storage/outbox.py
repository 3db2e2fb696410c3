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

import sqlite3
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NamedTuple

from gateway.listeners import Listeners
from gateway.storage.check import check_file
from gateway.storage.connection import (
    Connection,
    OutboxDamaged,
    StoreError,
    Usage,
    damaged,
    fault,
    is_damage,
    make_private,
    private_file,
)
from gateway.storage.documents import Documents
from gateway.storage.events import Events
from gateway.storage.history import NO_KIND, History
from gateway.storage.interface import OutboxEntry
from gateway.storage.keyring import Keyring
from gateway.storage.migrate import migrate
from gateway.storage.quarantine import Quarantine
from gateway.storage.readings import Readings
from gateway.storage.schema import SCHEMA, SCHEMA_VERSION
from gateway.storage.sealing import RECORD_BUCKET, outbox_aad
from gateway.storage.unassigned import Unassigned

__all__ = ["OutboxDamaged", "PutResult", "Remember", "SealedOutbox", "StoreError", "Usage"]


class PutResult(NamedTuple):
    """What `put` did: stored the reading under `id` (new), or found the same measurement stored before."""

    id: str
    new: bool  # False: the same physical measurement was stored before under `id`


class Remember(NamedTuple):
    """A history entry committed with its reading: kind (tagged), effective time, plaintext."""

    kind: str
    effective: float
    entry: bytes


class SealedOutbox:
    """The outbox file behind one object: readings and events waiting for the central service's ack
    (the uplink's `Outbox`), history for zoning, accepted documents, weighings waiting for an answer,
    and the keys that seal them. Each table's code lives in its own module; this class opens the file,
    wires them to one connection, and runs what spans tables (a reading and its history entry in one
    transaction; an acknowledgement of readings and events).

    `max_bytes` bounds the file: past it, `put` raises OutboxUnavailable exactly as on a full disk
    (nothing stored is touched, acknowledged records still leave and free room). Opening raises
    StoreError (nothing deleted) when the file cannot be used as it is."""

    def __init__(self, path: Path, kek: bytes, *, max_bytes: int | None = None) -> None:
        self.path = path
        try:
            make_private(path.parent)
            private_file(path)
        except OSError as exc:
            raise StoreError(f"outbox {path} cannot be created: {exc.strerror or exc}") from None
        try:
            self._conn = Connection(path)
            migrate(self._conn.db, kek, SCHEMA_VERSION, SCHEMA)
            if max_bytes is not None:
                self._conn.bound(max_bytes)
            self._keyring = Keyring(self._conn, kek)
            self._keyring.load()
            self._quarantine = Quarantine(self._conn)
            self._readings = Readings(self._conn, self._keyring, self._quarantine)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"outbox {path} cannot be opened: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # the schema or the keys: nothing can be opened without them
            raise OutboxDamaged(damaged(path, exc)) from exc
        except UnicodeDecodeError as exc:  # SQLite's message quotes a damaged schema's bytes
            raise OutboxDamaged(damaged(path, "its schema is unreadable")) from exc
        self._db = self._conn.db  # tests and benches reach the file through it
        self._events = Events(self._conn, self._keyring, self._quarantine)
        self._history = History(self._conn, self._keyring)
        self._documents = Documents(self._conn, self._keyring)
        self._unassigned = Unassigned(self._conn, self._keyring)
        private_file(path)
        # The depth is counted once, then kept by put/acknowledge: the 5 s health check reads a counter.
        self._readings.start_count()

    @property
    def quarantines(self) -> Listeners[[int, str]]:
        """Told (on whichever thread read the record) each quarantined record's seq and the reason:
        `outbox.quarantines.subscribe(listener)`."""
        return self._quarantine.listeners

    # Keys.

    def adopt_tag_key(self, tag_key: bytes) -> None:
        """Use this tag key (a new outbox, or one salvaged from a damaged file keeps its tags)."""
        self._keyring.adopt_tag_key(tag_key)

    @property
    def tag_key(self) -> bytes:
        """The tag key in clear (salvage carries it to the new file)."""
        return self._keyring.tag_key

    def kind_tag(self, kind: str) -> int:
        """The keyed tag of a measurement kind."""
        return self._keyring.kind_tag(kind)

    def dedup_tag(self, material: bytes | str) -> int:
        """The keyed tag of what identifies one physical measurement."""
        return self._keyring.dedup_tag(material)

    @property
    def key_version(self) -> int:
        """The version of the data key new records are sealed under."""
        return self._keyring.version

    def rotate(self) -> int:
        """Start a new data key; returns its version. Older records stay readable with their own key."""
        return self._keyring.rotate()

    def retire_unused_keys(self) -> list[int]:
        """Forget data keys (other than the current one) that no stored or quarantined record needs."""
        return self._keyring.retire_unused()

    # Readings.

    def put(
        self, record_id: str, payload: bytes, dedup: bytes | str | None = None,
        remember: Remember | tuple[str, float, bytes] | None = None,
    ) -> PutResult:
        """Seal and commit one reading. With `dedup` (what identifies the physical measurement: device,
        characteristic, bytes), a measurement seen before keeps its first id; only its keyed tag is kept.
        With `remember` (kind, effective time, bytes), its history entry is committed in the same transaction.

        Raises OutboxUnavailable when the disk is full or failing; the reading was not stored."""
        with self._conn.guard("store a reading"):
            try:
                return self._put(record_id, payload, dedup, Remember(*remember) if remember is not None else None)
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc) or (remember is None and dedup is None):
                    raise
            # The history's pages are damaged where this entry goes: the reading itself is what must be kept.
            self._conn.damage.note("a page of the history is unreadable: new readings are stored without "
                                   "their history entry")
            return self._put(record_id, payload, None, None)

    def _put(self, record_id: str, payload: bytes, dedup: bytes | str | None, remember: Remember | None) -> PutResult:
        key_version, sealed = self._keyring.seal(payload, lambda v: outbox_aad(record_id, v), RECORD_BUCKET)
        now = time.time()
        kind = self._keyring.kind_tag(remember.kind if remember is not None else NO_KIND)
        tag = None if dedup is None else self._keyring.dedup_tag(dedup)
        with self._conn.transaction():
            if tag is not None:
                first = self._history.seen(kind, tag)
                if first is not None:
                    self._conn.db.execute("ROLLBACK")
                    return PutResult(first, new=False)
            seq, renumbered = self._readings.next_seq(record_id)
            self._readings.insert(seq, record_id, renumbered, key_version, sealed, now)
            if remember is not None:
                self._history.add(kind, float(remember.effective), seq, record_id, tag, remember.entry)
            elif tag is not None:
                self._history.add_dedup(kind, seq, record_id, tag)
        self._readings.stored(seq)
        return PutResult(record_id, new=True)

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged readings with seq > after_seq, oldest first; one that fails authentication
        goes to quarantine and is left out."""
        return self._readings.pending(after_seq, limit)

    def depth(self) -> int:
        """Readings waiting for the central service's ack (a counter: no scan; blocks only until the
        count made at start-up is done)."""
        return self._readings.depth()

    def depth_is_complete(self) -> bool:
        """False when damage kept the count made at start-up from reading every waiting reading: `depth`
        then counts only those stored and acknowledged since."""
        self._readings.depth()
        return self._readings.complete

    def oldest_pending_age_s(self, now: float | None = None) -> float | None:
        """Seconds since the oldest waiting reading was stored; None when none waits."""
        return self._readings.oldest_pending_age_s(now)

    # Events.

    def put_event(self, event_id: str, payload: bytes) -> None:
        """Seal and commit one event (up/events); it leaves when the central service acks its id.
        Storing the same event id again changes nothing."""
        self._events.put(event_id, payload)

    def pending_events(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged events with seq > after_seq, oldest first."""
        return self._events.pending(after_seq, limit)

    def acknowledge(self, ids: Collection[str]) -> list[str]:
        """Delete these readings or events for good; returns the ids that were still there."""
        with self._conn.guard("delete acknowledged readings"):
            return self._acknowledge(ids)

    def _acknowledge(self, ids: Collection[str]) -> list[str]:
        if not ids:
            return []
        removed: list[str] = []
        readings = 0
        with self._conn.transaction():
            for record_id in ids:
                found = self._readings.remove(record_id)
                if found is not None:
                    readings += 1
                else:
                    found = self._events.remove(record_id)
                if found is not None:
                    removed.append(found)
        self._readings.count_change(-readings)
        return removed

    # History.

    def restore_history(self, entries: Iterable[tuple[int, str, int, float, int | None, bytes | None]]) -> None:
        """Salvage: history entries (seq, id, kind tag, effective, dedup tag, plaintext or None) as they were."""
        self._history.restore(entries)

    def recall(self, kind: str, *, since: float, until: float, at_least: int = 0, limit: int = 5000) -> list[bytes]:
        """History entries of `kind` with an effective time in [since, until], and at least the latest
        `at_least` up to `until` whatever their age; oldest first, never more than `limit` (the latest).
        One that fails authentication is left out and logged: a trend then misses one point, nothing else."""
        return self._history.recall(kind, since=since, until=until, at_least=at_least, limit=limit)

    def latest_effective(self, kind: str) -> float | None:
        """The effective time of the latest kept reading of `kind` (the end of its index range)."""
        return self._history.latest_effective(kind)

    def first_history_time(self, kinds: Iterable[str]) -> float | None:
        """When the earliest kept reading of these kinds was taken (one index lookup per kind)."""
        return self._history.first_time(kinds)

    def forget_stored_before(self, cutoff: float) -> int:
        """Drop history STORED before `cutoff` (gateway clock; zoning looks back 90 days at most). The
        time a reading claims plays no part: a record dated 2052 cannot make the real history "old"."""
        return self._history.forget_stored_before(cutoff)

    # Documents.

    def keep_document(self, kind: str, version: int, body: bytes) -> None:
        """Seal and commit a signed document the gateway accepted (a plan, a trust store) before it is
        used, so a restart comes back with it. Raises OutboxUnavailable when it cannot be written."""
        self._documents.keep(kind, version, body)

    def latest_document(self, kind: str) -> tuple[int, bytes] | None:
        """The newest authentic document of this kind (version, body); one that fails authentication is
        logged and passed over, so an older accepted one is used rather than none."""
        return self._documents.latest(kind)

    # Weighings waiting for the patient's answer.

    def park(self, record_id: str, payload: bytes, keep: int) -> bool:
        """Seal a weighing that waits for the patient's answer; False if `record_id` waits already.
        At most `keep` wait: the oldest beyond that is deleted (it was never the patient's reading yet).

        Raises OutboxUnavailable when the disk is full or failing."""
        return self._unassigned.park(record_id, payload, keep)

    def parked(self) -> list[tuple[str, bytes]]:
        """The weighings waiting for the patient's answer, oldest first. One that fails authentication
        is left out and logged: it is never shown or confirmed."""
        return self._unassigned.parked()

    def unpark(self, record_id: str) -> bool:
        """Delete a waiting weighing (answered); False if it was not waiting."""
        return self._unassigned.unpark(record_id)

    # The file.

    def usage(self) -> Usage:
        """Bytes in use and the bound of the file."""
        with self._conn.guard("be measured"):
            return self._conn.usage()

    def quarantined(self) -> int:
        """Records quarantined in this file."""
        return self._quarantine.count()

    def damage(self) -> list[str]:
        """Status faults for the damage met while the file was used (records left out, pages skipped,
        records quarantined), each naming `dho-gateway outbox salvage`; empty when none was met. No I/O."""
        faults = self._conn.damage.faults()
        if self._quarantine.count():
            faults.append(fault(self.path, f"{self._quarantine.count()} record(s) failed authentication and were "
                                "quarantined (kept in the file for a specialist; replace the card soon)"))
        return faults

    def check(self) -> list[str]:
        """Read the whole file and authenticate every record in it (what `status` does; seconds with a
        million records): one fault per kind of damage found, each naming `dho-gateway outbox salvage`,
        with the damage already met while the file was used. Never raises for damage."""
        found = check_file(self._conn, self._keyring)
        return [*dict.fromkeys(self.damage() + [fault(self.path, what) for what in found])]

    def close(self) -> None:
        """Close the file; the object is unusable after."""
        self._conn.close()
