"""Table `quarantine`: records that failed authentication, kept as they were (never silently dropped)."""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Literal

from gateway.listeners import Listeners
from gateway.storage.connection import Connection, is_damage

log = logging.getLogger("gateway.storage.outbox")  # the name operators' log filters know

Waiting = Literal["outbox", "events"]

# A damaged row may read back with NULLs: it is kept as far as it reads (the columns are NOT NULL).
_MOVE: dict[Waiting, str] = {
    "outbox": "INSERT OR REPLACE INTO quarantine SELECT seq, coalesce(id, ''), coalesce(key_version, -1), "
              "coalesce(sealed, x''), ?, ? FROM outbox WHERE seq = ?",
    "events": "INSERT OR REPLACE INTO quarantine SELECT seq, coalesce(id, ''), coalesce(key_version, -1), "
              "coalesce(sealed, x''), ?, ? FROM events WHERE seq = ?",
}
_DROP: dict[Waiting, str] = {
    "outbox": "DELETE FROM outbox WHERE seq = ?",
    "events": "DELETE FROM events WHERE seq = ?",
}


class Quarantine:
    """Moves a waiting record that failed authentication out of its table, counts them, and tells
    its `listeners` (on whichever thread read the record, with its seq and the reason)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.listeners: Listeners[[int, str]] = Listeners("quarantined record")
        try:
            self._count = int(conn.db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            conn.damage.note(f"the quarantine table cannot be read ({exc})")
            self._count = 0

    def move(self, table: Waiting, seq: int, reason: str) -> None:
        """Step 1: move record `seq` of `table` into quarantine, in one transaction."""
        log.error("outbox record #%d quarantined: %s", seq, reason)
        with self._conn.transaction():
            self._conn.db.execute(_MOVE[table], (reason, time.time(), seq))
            self._conn.db.execute(_DROP[table], (seq,))

    def tell(self, seq: int, reason: str) -> None:
        """Step 2, once the table that lost the record has counted it: count it here and tell the listeners."""
        self._count += 1
        self.listeners.notify(seq, reason)

    def count(self) -> int:
        """Records quarantined in this file (counted at opening, then kept)."""
        return int(self._count)
