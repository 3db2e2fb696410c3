"""Table `documents`: signed documents the box has accepted (the plan in force, the trust store)."""

from __future__ import annotations

import logging
import time

from cryptography.exceptions import InvalidTag

from gateway.storage.connection import Connection, read_rows
from gateway.storage.keyring import Keyring
from gateway.storage.sealing import document_aad

log = logging.getLogger("gateway.storage.outbox")  # the name operators' log filters know


class Documents:
    """Sealed documents by (kind, version); the newest authentic version of a kind wins."""

    def __init__(self, conn: Connection, keyring: Keyring) -> None:
        self._conn = conn
        self._keyring = keyring

    def keep(self, kind: str, version: int, body: bytes) -> None:
        """Seal and commit a document the gateway accepted, before it is used, so a restart comes back
        with it. Raises OutboxUnavailable when it cannot be written."""
        with self._conn.guard(f"keep the {kind}"), self._conn.lock:
            key_version, sealed = self._keyring.seal(body, lambda v: document_aad(kind, version, v))
            self._conn.db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)",
                                  (kind, version, key_version, sealed, time.time()))

    def latest(self, kind: str) -> tuple[int, bytes] | None:
        """The newest authentic document of this kind (version, body); one that fails authentication is
        logged and passed over, so an older accepted one is used rather than none."""
        with self._conn.guard(f"read the {kind}"), self._conn.lock:
            rows = list(read_rows(
                self._conn, "SELECT version, key_version, sealed FROM documents WHERE kind = ? ORDER BY version DESC",
                (kind,), f"a page of the kept documents is unreadable: the {kind} on it is passed over"))
        for version, key_version, sealed in rows:
            try:
                if not (isinstance(version, int) and isinstance(key_version, int) and isinstance(sealed, bytes)):
                    raise InvalidTag
                return version, self._keyring.unseal(key_version, sealed, document_aad(kind, version, key_version))
            except InvalidTag:
                log.error("stored %s version %r failed authentication and is passed over", kind, version)
                self._conn.damage.note(f"a kept {kind} fails authentication and is passed over")
        return None
