"""Schema migrations: numbered steps, applied in order, once, under a lock, so any number of workers
starting together on one database converge on the same schema.

Step 1 is the baseline (the tables of `schema.py`). A later change to the schema adds a step here
(ALTER TABLE ... written with SQLAlchemy Core) and never edits an earlier one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa

from central.store import schema

log = logging.getLogger(__name__)

Step = Callable[[sa.Connection], None]


def _baseline(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=list(schema.BASELINE))


def _worklist(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=list(schema.WORKLIST))


def _refusal_codes(conn: sa.Connection) -> None:
    # A database made by step 1 of this version already has them (step 1 creates the tables as they are now).
    have = {c["name"] for c in sa.inspect(conn).get_columns("rejections")}
    for column, kind in (("code", "VARCHAR(32)"), ("gateway", "VARCHAR(64)")):
        if column not in have:
            conn.execute(sa.text(f"ALTER TABLE rejections ADD COLUMN {column} {kind}"))
    if "rejections_by_gateway" not in {i["name"] for i in sa.inspect(conn).get_indexes("rejections")}:
        conn.execute(sa.text("CREATE INDEX rejections_by_gateway ON rejections (gateway, seq)"))


STEPS: list[tuple[int, str, Step]] = [
    (1, "registry, readings, observations, devices, events, rejections", _baseline),
    (2, "worklist: alerts, their readings, events and notes; users; audit trail", _worklist),
    (3, "refusals: the reason code and the gateway of each rejection (protocol 1.1)", _refusal_codes),
]
LATEST = STEPS[-1][0]
"""The schema version this dho-central writes (`SCHEMA_VERSION` of `central.store`)."""


def _lock(conn: sa.Connection) -> None:
    """Serialise concurrent migrators (N workers starting at once) until this transaction ends; then
    create the version table if this is a new database."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(4857001)"))
        schema.metadata.create_all(conn, tables=[schema.schema_version])
    else:
        # SQLite runs one writer at a time: IF NOT EXISTS cannot race, and the UPDATE takes the write
        # lock before the version is read (a deferred BEGIN would read first).
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        conn.exec_driver_sql("UPDATE schema_version SET version = version")


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    found = conn.execute(sa.select(schema.schema_version.c.version)).scalar()
    return int(found or 0)


def migrate(engine: sa.Engine) -> int:
    """Bring the database to LATEST; returns the version it was at before."""
    with engine.begin() as conn:
        _lock(conn)
        before = current_version(conn)
        if before > LATEST:
            from central.errors import CentralError

            raise CentralError(
                f"the database is at schema version {before}, newer than this dho-central ({LATEST}): "
                "upgrade dho-central"
            )
        for version, what, step in STEPS:
            if version > before:
                log.info("database: migrating to schema version %d (%s)", version, what)
                step(conn)
        if before == 0:
            conn.execute(sa.insert(schema.schema_version).values(version=LATEST))
        elif before < LATEST:
            conn.execute(sa.update(schema.schema_version).values(version=LATEST))
    return before
