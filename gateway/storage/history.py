"""Table `history`: what zoning needs of earlier readings, and the dedup tags of measurements seen.

Clustered by (kind tag, effective time): a kind's window is one index range and a new reading is
appended at the end of its kind's range. Kept 90 days from when an entry was STORED (its seq), never
from the time a reading claims.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag

from gateway.storage.connection import Connection, read_rows
from gateway.storage.keyring import Keyring
from gateway.storage.sealing import history_aad

log = logging.getLogger("gateway.storage.outbox")  # the name operators' log filters know

NO_KIND = ""  # the kind of an entry that only remembers a dedup tag


class History:
    """History entries (sealed, padded) and dedup-only entries, by keyed kind tag."""

    def __init__(self, conn: Connection, keyring: Keyring) -> None:
        self._conn = conn
        self._keyring = keyring

    def seen(self, kind: int, dedup: int) -> str | None:
        """The id under which this measurement (dedup tag) of this kind was stored, inside the caller's
        transaction; None if it was not."""
        row = self._conn.db.execute("SELECT id FROM history WHERE kind = ? AND dedup = ?", (kind, dedup)).fetchone()
        return None if row is None else str(row[0])

    def add(self, kind: int, effective: float, seq: int, record_id: str, dedup: int | None, entry: bytes) -> None:
        """Seal and write one entry, inside the caller's transaction."""
        hv, kept = self._keyring.seal(entry, lambda v: history_aad(record_id, kind, effective, seq, v))
        self._conn.db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (kind, effective, seq, record_id, dedup, hv, kept))

    def add_dedup(self, kind: int, seq: int, record_id: str, dedup: int) -> None:
        """Remember only that this measurement was stored under `record_id`, inside the caller's transaction."""
        self._conn.db.execute("INSERT INTO history VALUES (?, 0.0, ?, ?, ?, NULL, NULL)",
                              (kind, seq, record_id, dedup))

    def restore(self, entries: Iterable[tuple[int, str, int, float, int | None, bytes | None]]) -> None:
        """Salvage: history entries (seq, id, kind tag, effective, dedup tag, plaintext or None) as they were.
        Raises OutboxUnavailable."""
        with self._conn.guard("restore its history"), self._conn.transaction():
            for seq, record_id, kind, effective, tag, entry in entries:
                if entry is None:
                    self._conn.db.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                                          (kind, effective, seq, record_id, tag))
                    continue
                hv, kept = self._keyring.seal(entry, functools.partial(history_aad, record_id, kind, effective, seq))
                self._conn.db.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                                      (kind, effective, seq, record_id, tag, hv, kept))

    def recall(self, kind: str, *, since: float, until: float, at_least: int = 0, limit: int = 5000) -> list[bytes]:
        """Entries of `kind` with an effective time in [since, until], and at least the latest
        `at_least` up to `until` whatever their age; oldest first, never more than `limit` (the latest).
        One that fails authentication is left out and logged: a trend then misses one point, nothing else."""
        tag = self._keyring.kind_tag(kind)
        entries: list[bytes] = []
        with self._conn.guard("read its history"), self._conn.lock:
            rows = read_rows(self._conn,
                             "SELECT effective, seq, id, key_version, kept FROM history WHERE kind = ? "
                             "AND effective <= ? AND kept IS NOT NULL ORDER BY effective DESC", (tag, until),
                             "a page of the history is unreadable: zoning misses the entries on it")
            for effective, seq, record_id, key_version, kept in rows:
                if not (isinstance(effective, float | int) and isinstance(seq, int) and isinstance(record_id, str)
                        and isinstance(key_version, int) and isinstance(kept, bytes)):
                    self._left_out(record_id)
                    continue
                if (effective < since and len(entries) >= at_least) or len(entries) >= limit:
                    break
                try:
                    entries.append(self._keyring.unseal(key_version, kept, history_aad(
                        record_id, tag, float(effective), seq, key_version)))
                except InvalidTag:
                    self._left_out(record_id)
        entries.reverse()
        return entries

    def _left_out(self, record_id: object) -> None:
        log.error("history entry %s failed authentication and is left out", record_id)
        self._conn.damage.note("history entries fail authentication and are left out of zoning")

    def latest_effective(self, kind: str) -> float | None:
        """The effective time of the latest kept reading of `kind` (the end of its index range)."""
        with self._conn.guard("read its history"), self._conn.lock:
            # Entries without `kept` (dedup only) never carry a real kind's tag: the index end is the answer.
            row = next(read_rows(self._conn, "SELECT effective FROM history WHERE kind = ? ORDER BY effective DESC "
                                 "LIMIT 1", (self._keyring.kind_tag(kind),),
                                 "a page of the history is unreadable: zoning misses the entries on it"), None)
        return float(row[0]) if row is not None and isinstance(row[0], float | int) else None

    def first_time(self, kinds: Iterable[str]) -> float | None:
        """When the earliest kept reading of these kinds was taken (one index lookup per kind)."""
        firsts = []
        with self._conn.guard("read its history"), self._conn.lock:
            for kind in kinds:
                row = next(read_rows(self._conn, "SELECT effective FROM history WHERE kind = ? ORDER BY effective "
                                     "LIMIT 1", (self._keyring.kind_tag(kind),),
                                     "a page of the history is unreadable: zoning misses the entries on it"), None)
                if row is not None and isinstance(row[0], float | int):
                    firsts.append(float(row[0]))
        return min(firsts, default=None)

    def forget_stored_before(self, cutoff: float) -> int:
        """Drop entries STORED before `cutoff` (gateway clock); returns how many. The time a reading
        claims plays no part: a record dated 2052 cannot make the real history "old"."""
        with self._conn.guard("prune its history"), self._conn.lock:
            return self._conn.db.execute("DELETE FROM history WHERE seq < ?", (int(cutoff * 1000) << 16,)).rowcount
