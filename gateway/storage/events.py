"""Table `events`: durable events for up/events, sealed and acknowledged by id like readings."""

from __future__ import annotations

import time

from gateway.storage.connection import Connection
from gateway.storage.keyring import Keyring
from gateway.storage.quarantine import Quarantine
from gateway.storage.sealing import event_aad
from gateway.storage.waiting import WaitingRecords


class Events(WaitingRecords):
    """Events in the order they were stored (their own AUTOINCREMENT seq: they are rare, so the unique
    index on `id` that makes `put` idempotent is affordable)."""

    table = "events"
    _pending_sql = "SELECT seq, id, key_version, sealed FROM events WHERE seq > ? ORDER BY seq LIMIT ?"

    def __init__(self, conn: Connection, keyring: Keyring, quarantine: Quarantine) -> None:
        super().__init__(conn, keyring, quarantine, event_aad)

    def put(self, event_id: str, payload: bytes) -> None:
        """Seal and commit one event; storing the same event id again changes nothing.
        Raises OutboxUnavailable."""
        key_version, sealed = self._keyring.seal(payload, lambda v: event_aad(event_id, v))
        with self._conn.guard("store an event"), self._conn.transaction():
            self._conn.db.execute(
                "INSERT OR IGNORE INTO events (id, key_version, sealed, created) VALUES (?, ?, ?, ?)",
                (event_id, key_version, sealed, time.time()))

    def remove(self, event_id: str) -> str | None:
        """Delete one event by id, inside the caller's transaction; its id, or None if it was not there."""
        row = self._conn.db.execute("DELETE FROM events WHERE id = ? RETURNING id", (event_id,)).fetchone()
        return None if row is None else str(row[0])
