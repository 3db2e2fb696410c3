"""The central database: SQLite (embedded default) or PostgreSQL (production), one code path
(SQLAlchemy Core), numbered migrations, idempotent inserts, the gateway registry."""

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
    "ObservationQuery",
    "RegisteredGateway",
    "StoredResource",
    "database_url",
    "device_by_id",
    "export_devices",
    "export_observations",
    "observation_by_id",
    "patients_of_tenant",
    "redact",
    "search_observations",
    "utc",
]
