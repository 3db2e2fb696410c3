"""What readings (table `outbox`) and events (table `events`) share: sealed records that wait, oldest
first, until the central service acknowledges their id.

A damaged page among them is stepped over (issue 19.4): the records on it stay in the file for
`dho-gateway outbox salvage`, everything before and after it is still sent, and the status says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Literal

from cryptography.exceptions import InvalidTag

from gateway.storage.connection import Connection, is_damage
from gateway.storage.interface import OutboxEntry
from gateway.storage.keyring import Keyring
from gateway.storage.quarantine import Quarantine, Waiting

_LAST_SEQ = 2**63 - 1
_NOT_AUTHENTIC = "authentication failed: the stored record was altered or corrupted"

_ONE: dict[Waiting, str] = {
    "outbox": "SELECT seq, id, key_version, sealed FROM outbox WHERE seq >= ? ORDER BY seq LIMIT 1",
    "events": "SELECT seq, id, key_version, sealed FROM events WHERE seq >= ? ORDER BY seq LIMIT 1",
}

Row = tuple[int, object, object, object]


class WaitingRecords:
    """Reads a table of waiting records in seq order; one that fails authentication goes to quarantine
    and is left out. Subclasses name the table, its associated data and its query."""

    table: Waiting
    _pending_sql: str

    def __init__(self, conn: Connection, keyring: Keyring, quarantine: Quarantine,
                 aad: Callable[[str, int], bytes]) -> None:
        self._conn = conn
        self._keyring = keyring
        self._quarantine = quarantine
        self._aad = aad
        self._holes: dict[int, int | None] = {}  # cursor at a damaged page -> the first seq readable after it
        self._unmovable: set[int] = set()  # failed authentication, and the damaged page would not let it go

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged records with seq > after_seq, oldest first, at most `limit`, unsealed; a
        damaged page is stepped over. Raises OutboxUnavailable."""
        with self._conn.guard("be read"):
            with self._conn.lock:
                rows = self._rows(after_seq, limit)
            entries = []
            for seq, record_id, key_version, sealed in rows:
                try:
                    if not (isinstance(record_id, str) and isinstance(key_version, int) and isinstance(sealed, bytes)):
                        raise InvalidTag  # a damaged row reads back with NULLs or the wrong types
                    plain = self._keyring.unseal(key_version, sealed, self._aad(record_id, key_version))
                    entries.append(OutboxEntry(seq, record_id, plain))
                except InvalidTag:
                    self._quarantine_one(seq, _NOT_AUTHENTIC)
            return entries

    def _rows(self, after_seq: int, limit: int) -> list[Row]:
        """Up to `limit` rows after `after_seq` (the lock held), stepping over damaged pages."""
        rows: list[Row] = []
        try:
            for row in self._conn.db.execute(self._pending_sql, (after_seq, limit)):
                if row[0] > (rows[-1][0] if rows else after_seq) and row[0] not in self._unmovable:
                    rows.append(row)
            return rows
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            what = "readings" if self.table == "outbox" else "events"
            self._conn.damage.note(f"a page of the {what} waiting is unreadable and is skipped (the "
                                   f"{what} on it stay in the file; the others are sent) ({exc})")
        # One row per query from here: a query stops at its LIMIT, so it never reads (nor fails on) the next.
        cursor = rows[-1][0] if rows else after_seq
        while len(rows) < limit:
            row = self._one(cursor)
            if row is None:
                return rows
            if row is False:
                resume = self._past_damage(cursor)
                if resume is None:
                    return rows
                cursor = resume - 1  # the row at `resume` reads: the next query returns it
                continue
            cursor = row[0]
            if row[0] not in self._unmovable:
                rows.append(row)
        return rows

    def _one(self, after: int, *, at_least: bool = False) -> Row | Literal[False] | None:
        """The first row after `after` (from `after` with `at_least`); None at the end; False if it is
        damaged (unreadable, or out of order)."""
        start = after if at_least else after + 1
        if start > _LAST_SEQ:
            return None
        try:
            row = self._conn.db.execute(_ONE[self.table], (start,)).fetchone()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            return False
        if row is not None and row[0] < start:
            return False
        return None if row is None else row

    def _past_damage(self, cursor: int) -> int | None:
        """The first seq after `cursor` from which the table reads again (None: nothing after it does)."""
        if cursor in self._holes:
            return self._holes[cursor]

        def readable(at: int) -> bool:
            return self._one(at, at_least=True) is not False

        bad, step, good = cursor, 1, None
        while good is None and bad < _LAST_SEQ:  # doubling steps to a readable seq, then halving back
            at = min(_LAST_SEQ, cursor + step)
            if readable(at):
                good = at
            else:
                bad, step = at, step * 2
        while good is not None and good - bad > 1:
            middle = (bad + good) // 2
            bad, good = (bad, middle) if readable(middle) else (middle, good)
        self._holes[cursor] = good
        return good

    def _quarantine_one(self, seq: int, reason: str) -> None:
        try:
            self._quarantine.move(self.table, seq, reason)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            self._unmovable.add(seq)  # left where it is, and out of what is sent
            self._conn.damage.note(f"a record that fails authentication cannot be moved to quarantine ({exc})")
            return
        self._left(1)  # before the listener hears of it: what it reads must already be true
        self._quarantine.tell(seq, reason)

    def _left(self, count: int) -> None:
        """`count` records left the table other than by `remove` (a subclass that counts them overrides)."""
