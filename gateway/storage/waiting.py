"""What readings (table `outbox`) and events (table `events`) share: sealed records that wait, oldest
first, until the central service acknowledges their id."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidTag

from gateway.storage.connection import Connection
from gateway.storage.interface import OutboxEntry
from gateway.storage.keyring import Keyring
from gateway.storage.quarantine import Quarantine, Waiting


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

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged records with seq > after_seq, oldest first, at most `limit`, unsealed.
        Raises OutboxUnavailable."""
        with self._conn.guard("be read"):
            with self._conn.lock:
                rows = self._conn.db.execute(self._pending_sql, (after_seq, limit)).fetchall()
            entries = []
            for seq, record_id, key_version, sealed in rows:
                try:
                    plain = self._keyring.unseal(key_version, bytes(sealed), self._aad(record_id, key_version))
                    entries.append(OutboxEntry(seq, record_id, plain))
                except InvalidTag:
                    self._quarantine_one(seq, "authentication failed: the stored record was altered or corrupted")
            return entries

    def _quarantine_one(self, seq: int, reason: str) -> None:
        self._quarantine.move(self.table, seq, reason)
        self._left(1)  # before the listener hears of it: what it reads must already be true
        self._quarantine.tell(seq, reason)

    def _left(self, count: int) -> None:
        """`count` records left the table other than by `remove` (a subclass that counts them overrides)."""
