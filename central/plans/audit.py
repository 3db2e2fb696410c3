"""The audit trail of published plans: who ordered (prescriber), who verified, what, when.

Behind a small interface (`AuditLog`) so the central store (another room) can take it over; SQLite
for now, one row per published plan, never updated or deleted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple, Protocol


class AuditEntry(NamedTuple):
    """One published plan as the audit keeps it: when, for whom, its version and hash, who prescribed and
    who verified (holder and key id), the plain-language changes the verifier saw, and the envelope.
    """

    published: str  # ISO 8601, UTC
    tenant: str
    gateway: str
    patient: str
    version: int
    plan_hash: str
    prescriber: str  # holder and key id
    verifier: str
    changes: str  # the plain-language diff the verifier saw, one change per line
    document: str  # the signed envelope as published


class AuditLog(Protocol):
    """Where published plans are recorded, never changed: `record`, then `entries` and `latest` read them."""

    def record(self, entry: AuditEntry) -> None: ...

    def entries(self, gateway: str | None = None) -> list[AuditEntry]: ...

    def latest(self, tenant: str, gateway: str, patient: str | None = None) -> AuditEntry | None:
        """The plan published last for this gateway (and patient, if given)."""
        ...


class SqliteAuditLog:
    """The audit log in a SQLite file (WAL, synchronous=FULL): append-only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS published_plans (
                published TEXT NOT NULL, tenant TEXT NOT NULL, gateway TEXT NOT NULL, patient TEXT NOT NULL,
                version INTEGER NOT NULL, plan_hash TEXT NOT NULL, prescriber TEXT NOT NULL,
                verifier TEXT NOT NULL, changes TEXT NOT NULL, document TEXT NOT NULL,
                PRIMARY KEY (tenant, gateway, patient, version))"""
        )

    def record(self, entry: AuditEntry) -> None:
        self._db.execute("INSERT INTO published_plans VALUES (?,?,?,?,?,?,?,?,?,?)", entry)

    def entries(self, gateway: str | None = None) -> list[AuditEntry]:
        sql = "SELECT * FROM published_plans"
        rows = (self._db.execute(sql + " ORDER BY rowid") if gateway is None
                else self._db.execute(sql + " WHERE gateway = ? ORDER BY rowid", (gateway,)))
        return [AuditEntry(*row) for row in rows]

    def latest(self, tenant: str, gateway: str, patient: str | None = None) -> AuditEntry | None:
        row = self._db.execute(
            "SELECT * FROM published_plans WHERE tenant = ? AND gateway = ? AND (? IS NULL OR patient = ?) "
            "ORDER BY rowid DESC LIMIT 1", (tenant, gateway, patient, patient)).fetchone()
        return None if row is None else AuditEntry(*row)

    def close(self) -> None:
        self._db.close()
