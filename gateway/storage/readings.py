"""Tables `outbox` (readings waiting for the central service's ack) and `renumbered` (the rare id whose
sequence number is not the one its UUIDv7 carries), and the depth counter the health check reads."""

from __future__ import annotations

import sqlite3
import threading
import time

from gateway.storage.connection import Connection, StoreError, connect, is_damage, read_rows
from gateway.storage.interface import OutboxUnavailable
from gateway.storage.keyring import Keyring
from gateway.storage.quarantine import Quarantine
from gateway.storage.schema import seq_of
from gateway.storage.sealing import outbox_aad
from gateway.storage.waiting import WaitingRecords


class Readings(WaitingRecords):
    """Readings in delivery order. The sequence number is the UUIDv7 id's first 64 bits (so no index on
    `id` is written per reading); it is never at or below one handed out before by this process, as the
    sync loop's cursor asks for "everything after N" (a restart starts its cursor at 0)."""

    table = "outbox"
    _pending_sql = "SELECT seq, id, key_version, sealed FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"

    def __init__(self, conn: Connection, keyring: Keyring, quarantine: Quarantine) -> None:
        super().__init__(conn, keyring, quarantine, outbox_aad)
        try:
            (high,) = conn.db.execute("SELECT max(seq) FROM outbox").fetchone()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            # The table's last page is damaged: new readings get seqs from their own ids (the clock).
            conn.damage.note(f"the end of the readings waiting cannot be read ({exc})")
            high = 0
        self._high = int(high or 0)
        self._depth = 0
        self._depth_lock = threading.Lock()
        self._counted = threading.Event()
        self._count_error: BaseException | None = None
        self._complete = True

    def start_count(self) -> None:
        """Count the waiting readings once, beside start-up; `put` and acknowledgements keep the count after.
        Raises StoreError when the file cannot be read (damage is noted, and the count starts at 0)."""
        # Counting reads every page of the table (seconds at a million readings), so it runs beside
        # start-up on its own connection, in a snapshot taken now; what changes meanwhile is added to it.
        path = self._conn.path
        try:
            counter = connect(path)
            counter.execute("BEGIN")
            counter.execute("SELECT 1 FROM outbox LIMIT 1").fetchall()  # the snapshot starts here
        except sqlite3.OperationalError as exc:
            raise StoreError(f"outbox {path} cannot be opened: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._conn.damage.note(f"the readings waiting cannot be counted ({exc})")
            self._complete = False
            self._counted.set()
            return
        threading.Thread(target=self._count, args=(counter,), name="outbox-count", daemon=True).start()

    @property
    def complete(self) -> bool:
        """Whether the count covers every reading in the file (False once damage stopped the count)."""
        return self._complete

    def count_change(self, change: int) -> None:
        """`change` readings were added (+) or left (-)."""
        with self._depth_lock:
            self._depth += change

    def _count(self, counter: sqlite3.Connection) -> None:
        try:
            (n,) = counter.execute("SELECT count(*) FROM outbox").fetchone()
            self.count_change(int(n))
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                self._count_error = exc
            else:  # counted from 0: what is stored and acknowledged from now on
                self._complete = False
                self._conn.damage.note(f"the readings waiting cannot be counted ({exc})")
        finally:
            counter.close()
            self._counted.set()

    def _left(self, count: int) -> None:
        self.count_change(-count)

    def depth(self) -> int:
        """Readings waiting (a counter: no scan; blocks only until the count made at start-up is done).
        Raises OutboxUnavailable when that count failed; on a damaged file it counts what it could
        (the damage is noted for the status)."""
        self._counted.wait()
        if self._count_error is not None:
            raise OutboxUnavailable(f"outbox {self._conn.path} cannot be counted: {self._count_error}")
        return max(0, int(self._depth))

    def next_seq(self, record_id: str) -> tuple[int, bool]:
        """(seq, renumbered). Never at or below one handed out before by this process (the sync loop's
        cursor sends "everything after N"); a restart starts its cursor at 0."""
        own = seq_of(record_id)
        if own is not None and own > self._high:
            return own, False
        return self._high + 1, True

    def insert(self, seq: int, record_id: str, renumbered: bool, key_version: int, sealed: bytes,
               created: float) -> None:
        """Write one sealed reading at `seq` (from `next_seq`), inside the caller's transaction;
        `stored` must be called once it is committed."""
        if renumbered:
            self._conn.db.execute("INSERT INTO renumbered VALUES (?, ?)", (record_id, seq))
        self._conn.db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)",
                              (seq, record_id, key_version, sealed, created))

    def stored(self, seq: int) -> None:
        """The reading at `seq` was committed: the next one comes after it, and it counts."""
        self._high = seq
        self.count_change(+1)

    def remove(self, record_id: str) -> str | None:
        """Delete one reading by id, inside the caller's transaction; its id as stored, or None if it
        was not there (the caller counts what left with `count_change`)."""
        seq = seq_of(record_id)
        row = None if seq is None else self._conn.db.execute(
            "DELETE FROM outbox WHERE seq = ? AND id = ? RETURNING id", (seq, record_id)).fetchone()
        if row is None:
            moved = self._conn.db.execute(
                "DELETE FROM renumbered WHERE id = ? RETURNING seq", (record_id,)).fetchone()
            if moved is not None:
                row = self._conn.db.execute("DELETE FROM outbox WHERE seq = ? AND id = ? RETURNING id",
                                            (moved[0], record_id)).fetchone()
        return None if row is None else str(row[0])

    def oldest_pending_age_s(self, now: float | None = None) -> float | None:
        """Seconds since the oldest waiting reading was stored; None when none waits."""
        with self._conn.guard("be read"), self._conn.lock:
            # The first page damaged: the age is not known (None); the damage is noted for the status.
            row = next(read_rows(self._conn, "SELECT created FROM outbox ORDER BY seq LIMIT 1", (),
                                 "the oldest reading waiting cannot be read"), None)
        if row is None or not isinstance(row[0], float | int):
            return None
        return (now or time.time()) - float(row[0])
