"""Table `unassigned`: a shared scale's weighings whose user the scale could not tell, sealed until the
patient answers "was this you?" (yes: it becomes a reading, no: it is deleted)."""

from __future__ import annotations

import logging
import time

from cryptography.exceptions import InvalidTag

from gateway.storage.connection import Connection, read_rows
from gateway.storage.keyring import Keyring
from gateway.storage.sealing import unassigned_aad

log = logging.getLogger("gateway.storage.outbox")  # the name operators' log filters know


class Unassigned:
    """Weighings waiting for the patient's answer, oldest first, at most `keep` of them."""

    def __init__(self, conn: Connection, keyring: Keyring) -> None:
        self._conn = conn
        self._keyring = keyring

    def park(self, record_id: str, payload: bytes, keep: int) -> bool:
        """Seal a weighing that waits for the patient's answer; False if `record_id` waits already.
        At most `keep` wait: the oldest beyond that is deleted (it was never the patient's reading yet).

        Raises OutboxUnavailable when the disk is full or failing."""
        with self._conn.guard("keep a weighing to confirm"), self._conn.transaction():
            key_version, sealed = self._keyring.seal(payload, lambda v: unassigned_aad(record_id, v))
            added = self._conn.db.execute("INSERT OR IGNORE INTO unassigned VALUES (?, ?, ?, ?)",
                                          (record_id, key_version, sealed, time.time())).rowcount == 1
            self._conn.db.execute("DELETE FROM unassigned WHERE id NOT IN "
                                  "(SELECT id FROM unassigned ORDER BY created DESC, rowid DESC LIMIT ?)", (keep,))
        return bool(added)

    def parked(self) -> list[tuple[str, bytes]]:
        """The weighings waiting for the patient's answer, oldest first. One that fails authentication
        is left out and logged: it is never shown or confirmed."""
        with self._conn.guard("read the weighings to confirm"), self._conn.lock:
            rows = list(read_rows(self._conn, "SELECT id, key_version, sealed FROM unassigned ORDER BY created, rowid",
                                  (), "a page of the weighings to confirm is unreadable: they are left out"))
        out = []
        for record_id, key_version, sealed in rows:
            try:
                if not (isinstance(record_id, str) and isinstance(key_version, int) and isinstance(sealed, bytes)):
                    raise InvalidTag
                aad = unassigned_aad(record_id, key_version)
                out.append((record_id, self._keyring.unseal(key_version, sealed, aad)))
            except InvalidTag:
                log.error("unassigned weighing %s failed authentication and is left out", record_id)
                self._conn.damage.note("weighings to confirm fail authentication and are left out")
        return out

    def unpark(self, record_id: str) -> bool:
        """Delete a waiting weighing (answered); False if it was not waiting."""
        with self._conn.guard("record the answer"), self._conn.lock:
            return bool(self._conn.db.execute("DELETE FROM unassigned WHERE id = ?", (record_id,)).rowcount == 1)
