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
    # Schema version 3 (protocol 1.1): the reason code answered to the gateway, and the gateway the topic named.
    sa.Column("code", sa.String(32)),
    sa.Column("gateway", sa.String(64)),
    sa.Index("rejections_by_gateway", "gateway", "seq"),
)

# -- the worklist (schema version 2) ------------------------------------------------------------------
# An alert: something a nurse or coordinator of one tenant must act on. Made in the transaction that
# stores what caused it (`Database.commit`), so nothing acked is without its alert. `open_key` is set
# only while the alert is open or in progress: it is unique per tenant, so a second red of the same kind
# for the same patient joins the open alert, even when two workers store them at once.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("patient", sa.String(64), nullable=False),  # pseudonym; "" when the kit has no known patient
    sa.Column("gateway", sa.String(64)),
    sa.Column("kind", sa.String(32), nullable=False),  # reading | refused | silent | fault | outbox | ...
    sa.Column("subject", sa.String(64), nullable=False),  # the reading type, or what the kit alert is about
    sa.Column("severity", sa.String(16), nullable=False),  # red | yellow | info
    sa.Column("state", sa.String(16), nullable=False),  # open | in_progress | done | escalated
    sa.Column("open_key", sa.String(300)),
    sa.Column("assignee", sa.String(64)),
    sa.Column("detail", sa.String(500), nullable=False, server_default=""),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("measured_at", UtcTime, nullable=False),  # the first reading (or event) behind it
    sa.Column("latest_at", UtcTime, nullable=False),
    sa.Column("opened_at", UtcTime, nullable=False),
    sa.Column("changed_at", UtcTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),  # optimistic concurrency
    sa.UniqueConstraint("tenant", "open_key", name="alerts_open_once"),
    sa.Index("alerts_by_tenant", "tenant", "state", "measured_at"),
)

alert_readings = sa.Table(
    "alert_readings", metadata,
    sa.Column("alert_id", sa.String(36), primary_key=True),
    sa.Column("reading_id", sa.String(36), primary_key=True),
)

# Every change of an alert: who (a user name, or "system" for ingest and the checks), what, when.
alert_events = sa.Table(
    "alert_events", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("alert_id", sa.String(36), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # opened | joined | taken | noted | done | escalated ...
    sa.Column("detail", sa.String(500), nullable=False, server_default=""),
    sa.Index("alert_events_by_alert", "alert_id", "seq"),
    sa.Index("alert_events_by_tenant", "tenant", "seq"),
)

alert_notes = sa.Table(
    "alert_notes", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("alert_id", sa.String(36), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("alert_notes_by_alert", "alert_id", "seq"),
)

# The follow-up service's people: one tenant and one role each; the password only as a scrypt hash.
users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # nurse | coordinator
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)

# Who looked at what and did what, when: every patient view and action, and every refused access.
audit = sa.Table(
    "audit", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(100), nullable=False, server_default=""),
    sa.Column("detail", sa.String(500), nullable=False, server_default=""),
    sa.Index("audit_by_tenant", "tenant", "seq"),
)

BASELINE = (gateways, readings, observations, devices, events, rejections)
WORKLIST = (alerts, alert_readings, alert_events, alert_notes, users, audit)

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)
