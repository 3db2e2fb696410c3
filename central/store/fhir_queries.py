"""The FHIR API's read-side queries: every one scoped by a tenant, Observation searches paged by keyset
(effective time, id) so a reading arriving late never shifts a page a client is walking through."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from central.store import schema
from central.store.database import Database, utc


@dataclass(frozen=True)
class ObservationQuery:
    """What to find. Each entry of a sequence is ANDed, the values inside one set ORed."""

    tenant: str
    patients: Sequence[frozenset[str]] = ()  # pseudonyms
    codes: Sequence[frozenset[str]] = ()  # MDC codes as stored
    identifiers: Sequence[frozenset[str]] = ()  # deduplication identifier values
    dates: Sequence[tuple[str, datetime]] = ()  # (ge|lt, UTC instant) on the effective time
    last_updated: Sequence[tuple[str, datetime]] = ()  # (ge|lt, UTC instant) on when it was stored
    limit: int = 100
    descending: bool = False
    after: tuple[datetime, str] | None = None  # the last (effective, id) of the previous page


@dataclass(frozen=True)
class StoredResource:
    """A FHIR resource as stored: its id, effective and last-updated times, and its JSON text (served as
    it is, without parsing).
    """

    id: str
    effective: datetime | None
    last_updated: datetime
    resource: str  # FHIR JSON as stored


_OPS = {"ge": "__ge__", "lt": "__lt__"}


def _conditions(query: ObservationQuery) -> list[sa.ColumnElement[bool]]:
    o = schema.observations.c
    r = schema.readings.c
    where: list[sa.ColumnElement[bool]] = [o.tenant == query.tenant]
    where += [o.patient.in_(sorted(values)) for values in query.patients]
    where += [o.code.in_(sorted(values)) for values in query.codes]
    where += [o.identifier.in_(sorted(values)) for values in query.identifiers]
    where += [getattr(o.effective, _OPS[op])(when) for op, when in query.dates]
    where += [getattr(r.stored_at, _OPS[op])(when) for op, when in query.last_updated]
    return where


def _source() -> sa.FromClause:
    # Every Observation was stored in the transaction of its reading: the reading's stored_at is its
    # lastUpdated (a join on the readings' primary key).
    return schema.observations.join(schema.readings, schema.readings.c.id == schema.observations.c.reading_id)


def search_observations(database: Database, query: ObservationQuery) -> tuple[int, list[StoredResource]]:
    """(how many match in all, this page) in effective-time order (then id), after `query.after`."""
    o = schema.observations.c
    stored_at = schema.readings.c.stored_at
    where = _conditions(query)
    source = _source()
    with database.engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(source).where(*where)).scalar_one())
        if query.limit <= 0:
            return total, []
        page = list(where)
        if query.after is not None:
            when, last = query.after
            if query.descending:
                page.append(sa.or_(o.effective < when, sa.and_(o.effective == when, o.id < last)))
            else:
                page.append(sa.or_(o.effective > when, sa.and_(o.effective == when, o.id > last)))
        order = (o.effective.desc(), o.id.desc()) if query.descending else (o.effective, o.id)
        rows = conn.execute(
            sa.select(o.id, o.effective, o.resource, stored_at.label("stored_at")).select_from(source)
            .where(*page).order_by(*order).limit(query.limit)
        ).all()
    return total, [StoredResource(row.id, utc(row.effective), utc(row.stored_at), row.resource) for row in rows]


def observation_by_id(database: Database, tenant: str, observation_id: str) -> StoredResource | None:
    """One Observation of this tenant (None for another tenant's: it does not exist for this caller)."""
    o = schema.observations.c
    r = schema.readings.c
    with database.engine.connect() as conn:
        row = conn.execute(
            sa.select(o.id, o.effective, o.resource, r.stored_at).select_from(_source())
            .where(o.id == observation_id, o.tenant == tenant)
        ).first()
    return None if row is None else StoredResource(row.id, utc(row.effective), utc(row.stored_at), row.resource)


def device_by_id(database: Database, tenant: str, device_id: str) -> StoredResource | None:
    """One Device of this tenant (None for another tenant's)."""
    d = schema.devices.c
    with database.engine.connect() as conn:
        row = conn.execute(sa.select(d.id, d.resource, d.updated_at).where(d.id == device_id, d.tenant == tenant)) \
            .first()
    return None if row is None else StoredResource(row.id, None, utc(row.updated_at), row.resource)


def patients_of_tenant(database: Database, tenant: str) -> list[str]:
    """Every pseudonym this tenant has readings of (to resolve a Patient id that is a digest)."""
    r = schema.readings.c
    with database.engine.connect() as conn:
        return list(conn.execute(sa.select(r.patient).where(r.tenant == tenant).distinct()).scalars())


def export_observations(database: Database, tenant: str, since: datetime | None = None,
                        batch: int = 1000) -> Iterator[StoredResource]:
    """Every Observation of the tenant (stored at or after `since`), in id order, a batch per query."""
    o = schema.observations.c
    r = schema.readings.c
    after = ""
    while True:
        query = sa.select(o.id, o.effective, o.resource, r.stored_at).select_from(_source()) \
            .where(o.tenant == tenant, o.id > after).order_by(o.id).limit(batch)
        if since is not None:
            query = query.where(r.stored_at >= since)
        with database.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield StoredResource(row.id, utc(row.effective), utc(row.stored_at), row.resource)
        after = rows[-1].id


def export_devices(database: Database, tenant: str, since: datetime | None = None) -> Iterator[StoredResource]:
    """Every Device of the tenant (changed at or after `since`)."""
    d = schema.devices.c
    query = sa.select(d.id, d.resource, d.updated_at).where(d.tenant == tenant).order_by(d.id)
    if since is not None:
        query = query.where(d.updated_at >= since)
    with database.engine.connect() as conn:
        rows = conn.execute(query).all()
    for row in rows:
        yield StoredResource(row.id, None, utc(row.updated_at), row.resource)
