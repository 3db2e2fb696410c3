"""The central database: SQLite (embedded default) or PostgreSQL (production), one code path
(SQLAlchemy Core), numbered migrations, idempotent inserts, the gateway registry, the alerts made in
the ingest transaction (`AlertCause`, `raise_alerts`), and which of its failures are worth waiting for
(`transient`). `schema` holds the tables: the worklist room reads and writes its own (alerts, users,
audit) through it, in the one database and migrator."""

from __future__ import annotations

from central.store import schema
from central.store.alerts import AlertCause, raise_alerts
from central.store.commands import add_db_argument, open_database
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
    RefusalRecord,
    RegisteredGateway,
    database_url,
    redact,
    utc,
)
from central.store.fhir_queries import (
    ObservationQuery,
    StoredResource,
    device_by_id,
    export_devices,
    export_observations,
    observation_by_id,
    patients_of_tenant,
    search_observations,
)
from central.store.migrations import LATEST as SCHEMA_VERSION
from central.store.transient import Transient, transient

__all__ = [
    "SCHEMA_VERSION",
    "AlertCause",
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
    "ObservationQuery",
    "RefusalRecord",
    "RegisteredGateway",
    "StoredResource",
    "Transient",
    "add_db_argument",
    "database_url",
    "device_by_id",
    "export_devices",
    "export_observations",
    "observation_by_id",
    "open_database",
    "patients_of_tenant",
    "raise_alerts",
    "redact",
    "schema",
    "search_observations",
    "transient",
    "utc",
]
