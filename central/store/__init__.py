"""The central database: SQLite (embedded default) or PostgreSQL (production), one code path
(SQLAlchemy Core), numbered migrations, idempotent inserts, the gateway registry, and which of its
failures are worth waiting for (`transient`)."""

from __future__ import annotations

from central.store.database import (
    Changes,
    Committed,
    Database,
    GatewayRecord,
    GatewayState,
    NewDevice,
    NewEvent,
    NewObservation,
    NewReading,
    NewRejection,
    RegisteredGateway,
    database_url,
    redact,
    utc,
)
from central.store.migrations import LATEST as SCHEMA_VERSION
from central.store.transient import Transient, transient

__all__ = [
    "SCHEMA_VERSION",
    "Changes",
    "Committed",
    "Database",
    "GatewayRecord",
    "GatewayState",
    "NewDevice",
    "NewEvent",
    "NewObservation",
    "NewReading",
    "NewRejection",
    "RegisteredGateway",
    "Transient",
    "database_url",
    "redact",
    "transient",
    "utc",
]
