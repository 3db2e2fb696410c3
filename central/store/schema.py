"""The central database's tables, as SQLAlchemy Core metadata: one definition for SQLite and PostgreSQL.

Times are stored as UTC; JSON documents (a reading as received, a FHIR resource) as text, so both
databases hold exactly the bytes that were validated.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
UtcTime = sa.DateTime(timezone=True)

# The registry of provisioned gateways: identity -> tenant and patient pseudonym, and the latest state
# each gateway reported (its retained status, its Last Will) for a technician.
gateways = sa.Table(
    "gateways", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient", sa.String(64), nullable=False),
    sa.Column("provisioned_at", UtcTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="never_seen"),
    sa.Column("last_seen", UtcTime),
    sa.Column("status_at", UtcTime),
    sa.Column("software_version", sa.String(64)),
    sa.Column("outbox_depth", sa.Integer),
    sa.Column("outbox_used_percent", sa.Integer),
    sa.Column("outbox_oldest_at", UtcTime),
    sa.Column("quarantined", sa.Integer),
    sa.Column("faults", sa.Text, nullable=False, server_default="[]"),
    sa.Column("devices", sa.Text, nullable=False, server_default="[]"),
    sa.Column("plan", sa.String(128)),
    sa.Column("plan_version", sa.Integer),
)

readings = sa.Table(
    "readings", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("patient", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("effective", UtcTime, nullable=False),
    sa.Column("zone", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("stored_at", UtcTime, nullable=False),
    sa.Index("readings_by_patient", "tenant", "patient", "effective"),
    sa.Index("readings_by_gateway", "gateway", "stored_at"),
)

# FHIR Observations made from readings at ingest, in the same transaction. `identifier` is the PHD
# IG's deduplication identifier: the same physical measurement is one Observation even if it ever
# arrived under two reading ids.
observations = sa.Table(
    "observations", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("identifier", sa.String(400), nullable=False, unique=True),
    sa.Column("reading_id", sa.String(36), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient", sa.String(64), nullable=False),
    sa.Column("code", sa.String(16), nullable=False),
    sa.Column("effective", UtcTime, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Index("observations_by_patient", "patient", "effective"),
)

devices = sa.Table(
    "devices", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("updated_at", UtcTime, nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("stored_at", UtcTime, nullable=False),
    sa.Index("events_by_gateway", "gateway", "at"),
)

# Messages refused (unknown gateway, another tenant's topic, invalid, too large): what and why, never
# the payload (it may hold patient data of a gateway we cannot vouch for).
rejections = sa.Table(
    "rejections", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("topic", sa.String(300), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("at", UtcTime, nullable=False),
)

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)
