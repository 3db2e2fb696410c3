"""The central database: one code path over SQLite (embedded default) and PostgreSQL (production).

Everything a worker learned from one batch of MQTT messages is written in one transaction
(`Database.commit`); only after it returns are the gateways acked. Inserts are idempotent: a reading id,
an event id or an Observation's deduplication identifier seen before is skipped, not stored twice.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from central.errors import CentralError
from central.store import schema
from central.store.alerts import AlertCause, event_causes, raise_alerts, reading_causes, status_causes
from central.store.migrations import migrate
from protocol import parse_up_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredGateway:
    """A provisioned gateway as the registry knows it: its id, tenant and patient pseudonym."""

    id: str
    tenant: str
    patient: str


@dataclass(frozen=True)
class NewObservation:
    """A FHIR Observation made from a reading at ingest, with the PHD IG's deduplication identifier."""

    id: str
    identifier: str
    code: str
    effective: datetime
    resource: str  # FHIR JSON


@dataclass(frozen=True)
class NewDevice:
    """A FHIR Device (a measuring device or the gateway) to store or update."""

    id: str
    resource: str  # FHIR JSON


@dataclass(frozen=True)
class NewReading:
    """A reading to store: its wire JSON as received, its zone, and the Observations made from it."""

    id: str
    tenant: str
    gateway: str
    patient: str
    type: str
    effective: datetime
    zone: str
    body: str  # the reading as received (wire JSON)
    observations: tuple[NewObservation, ...] = ()


@dataclass(frozen=True)
class NewEvent:
    """A gateway's event to store (kind, when, detail as JSON); never patient data."""

    id: str
    tenant: str
    gateway: str
    kind: str
    at: datetime
    detail: str  # JSON


@dataclass(frozen=True)
class GatewayState:
    """What a status message (or its Last Will) says about a gateway."""

    gateway: str
    state: str
    at: datetime
    software_version: str | None = None
    outbox_depth: int | None = None
    outbox_used_percent: int | None = None
    quarantined: int | None = None
    faults: tuple[str, ...] = ()
    devices: str = "[]"  # JSON list of DeviceStatus
    outbox_oldest_at: datetime | None = None  # when the oldest reading still waiting was stored


@dataclass(frozen=True)
class NewRejection:
    """A refused message: its topic, why, and its size; never its payload."""

    topic: str
    reason: str
    size: int
    code: str | None = None  # protocol 1.1's reason code, as answered to the gateway


@dataclass(frozen=True)
class RefusalRecord:
    """One refused message as `dho-central gateways refusals` lists it (never its payload)."""

    at: datetime
    gateway: str | None  # the gateway id its topic named (None: not a v1 topic)
    topic: str
    code: str | None  # None for refusals stored before protocol 1.1
    reason: str
    size: int


@dataclass
class Changes:
    """Everything learned from one batch of messages, committed together."""

    readings: list[NewReading] = field(default_factory=list)
    devices: dict[tuple[str, str], NewDevice] = field(default_factory=dict)  # (tenant, id) -> resource
    events: list[NewEvent] = field(default_factory=list)
    states: list[GatewayState] = field(default_factory=list)
    rejections: list[NewRejection] = field(default_factory=list)
    seen: dict[str, datetime] = field(default_factory=dict)  # gateway -> when we last heard from it
    plans: dict[str, tuple[str, int]] = field(default_factory=dict)  # gateway -> (plan, version) in use

    def empty(self) -> bool:
        return not (self.readings or self.events or self.states or self.rejections or self.seen)


@dataclass(frozen=True)
class Committed:
    """What one `Database.commit` stored that was not there before (readings sent again are duplicates)."""

    new_readings: int
    duplicate_readings: int
    new_observations: int
    new_events: int
    new_alerts: int = 0


@dataclass(frozen=True)
class GatewayRecord:
    """A registry row: the gateway's tenant and patient, and the latest state it reported."""

    id: str
    tenant: str
    patient: str
    state: str
    last_seen: datetime | None
    status_at: datetime | None
    software_version: str | None
    outbox_depth: int | None
    outbox_used_percent: int | None
    quarantined: int | None
    faults: list[str]
    devices: list[dict[str, Any]]
    plan: str | None
    plan_version: int | None
    outbox_oldest_at: datetime | None = None  # when the oldest reading still waiting was stored


def utc(value: datetime) -> datetime:
    """SQLite hands times back without their zone; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_url(text: str) -> str:
    """Accept a plain path (SQLite) or a URL; PostgreSQL always through psycopg 3."""
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    for plain in ("postgresql://", "postgres://"):
        if text.startswith(plain):
            return "postgresql+psycopg://" + text[len(plain):]
    return text


def redact(url: str) -> str:
    """The database URL with its password replaced by `***`, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class Database:
    """The central database over SQLite or PostgreSQL, migrated to the latest schema when opened.

    Raises CentralError in one line when the URL is neither, or the database cannot be reached."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = database_url(url)
        self.dialect = self.url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect not in ("sqlite", "postgresql"):
            raise CentralError(f"database: {redact(url)} is neither SQLite nor PostgreSQL")
        if self.dialect == "sqlite":
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 30})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(self.url, pool_size=pool_size, pool_pre_ping=True)
        try:
            migrate(self.engine)
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            raise CentralError(f"database: cannot open {redact(self.url)}: {_first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        # The one place the dialects differ: both spell ON CONFLICT, through their own insert().
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def insert(self, table: sa.Table) -> Any:
        """This database's INSERT for `table`, with `on_conflict_do_nothing` / `on_conflict_do_update`."""
        return self._insert(table)

    # -- registry ---------------------------------------------------------------------------------

    def provision(self, gateway: str, *, tenant: str, patient: str) -> None:
        """Register a gateway (or move it to another tenant/patient, e.g. a kit given to a new patient)."""
        now = datetime.now(UTC)
        stmt = self._insert(schema.gateways).values(id=gateway, tenant=tenant, patient=patient, provisioned_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.gateways.c.id],
            set_={"tenant": tenant, "patient": patient, "provisioned_at": now},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def register(self, gateway: str, *, tenant: str, patient: str, actor: str, reason: str) -> str | None:
        """Register a gateway from its registration (`dho-central gateways register`), with an audit record
        when it is new or its tenant or pseudonym changed (a reissued kit: old -> new pseudonym). Returns
        what changed ("new", "patient", "tenant", "tenant, patient"), or None when it was registered as it is."""
        now = datetime.now(UTC)
        g = schema.gateways.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(g.tenant, g.patient).where(g.id == gateway)).first()
            if row is not None and (row.tenant, row.patient) == (tenant, patient):
                return None
            changed = "new" if row is None else ", ".join(
                what for what, differs in (("tenant", row.tenant != tenant), ("patient", row.patient != patient))
                if differs)
            stmt = self._insert(schema.gateways).values(id=gateway, tenant=tenant, patient=patient, provisioned_at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=[schema.gateways.c.id], set_={
                "tenant": tenant, "patient": patient, "provisioned_at": now}))
            detail = (f"{reason}: tenant {tenant}, patient {patient}" if row is None else
                      f"{reason}: tenant {row.tenant} -> {tenant}, patient {row.patient} -> {patient}")
            conn.execute(sa.insert(schema.audit).values(
                tenant=tenant, at=now, actor=actor[:64], action="gateway_registered" if row is None
                else "gateway_reregistered", target=gateway, detail=detail[:500]))
        return changed

    def deprovision(self, gateway: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(schema.gateways).where(schema.gateways.c.id == gateway)).rowcount > 0

    def registered(self, ids: Sequence[str]) -> dict[str, RegisteredGateway]:
        g = schema.gateways.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(g.id, g.tenant, g.patient).where(g.id.in_(list(ids)))).all()
        return {r.id: RegisteredGateway(r.id, r.tenant, r.patient) for r in rows}

    def gateways(self, tenant: str | None = None) -> list[GatewayRecord]:
        query = sa.select(schema.gateways).order_by(schema.gateways.c.tenant, schema.gateways.c.id)
        if tenant is not None:
            query = query.where(schema.gateways.c.tenant == tenant)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            GatewayRecord(
                id=r["id"], tenant=r["tenant"], patient=r["patient"], state=r["state"],
                last_seen=utc(r["last_seen"]) if r["last_seen"] else None,
                status_at=utc(r["status_at"]) if r["status_at"] else None,
                software_version=r["software_version"], outbox_depth=r["outbox_depth"],
                outbox_used_percent=r["outbox_used_percent"], quarantined=r["quarantined"],
                faults=json.loads(r["faults"]), devices=json.loads(r["devices"]),
                plan=r["plan"], plan_version=r["plan_version"],
                outbox_oldest_at=utc(r["outbox_oldest_at"]) if r["outbox_oldest_at"] else None,
            )
            for r in rows
        ]

    # -- ingest -------------------------------------------------------------------------------------

    def commit(self, changes: Changes) -> Committed:
        """Write one batch in one transaction, with the alerts it raises; returns what was new."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            fresh, new_observations = self._store_readings(conn, changes.readings, now)
            self._store_devices(conn, changes.devices, now)
            fresh_events = self._store_events(conn, changes.events, now)
            _store_states(conn, changes.states)
            _store_seen_and_plans(conn, changes.seen, changes.plans)
            if changes.rejections:
                conn.execute(
                    sa.insert(schema.rejections),
                    [{"topic": x.topic[:300], "reason": x.reason[:500], "size": x.size, "at": now, "code": x.code,
                      "gateway": _gateway_of(x.topic)} for x in changes.rejections],
                )
            causes = reading_causes(x for x in changes.readings if x.id in fresh)
            causes += _refusal_causes(conn, changes.rejections, now)
            causes += _kit_causes(conn, [x for x in changes.events if x.id in fresh_events], changes.states)
            new_alerts = raise_alerts(conn, self._insert, causes, now)
        new_readings = len(fresh)
        return Committed(new_readings, len(changes.readings) - new_readings, new_observations, len(fresh_events),
                         new_alerts)

    def _store_readings(self, conn: sa.Connection, readings: list[NewReading], now: datetime) -> tuple[set[str], int]:
        """Insert readings and their Observations; returns (ids new in this transaction, new Observations)."""
        if not readings:
            return set(), 0
        # Plain executemany with ON CONFLICT DO NOTHING, counted by rowcount: no RETURNING, so
        # psycopg sends one short prepared statement in a pipeline instead of parsing a
        # multi-row VALUES string per batch (measured: half the commit time).
        r = schema.readings
        rows = [
            {"id": x.id, "tenant": x.tenant, "gateway": x.gateway, "patient": x.patient, "type": x.type,
             "effective": x.effective, "zone": x.zone, "body": x.body, "stored_at": now}
            for x in readings
        ]
        conn.execute(self._insert(r).on_conflict_do_nothing(), rows)
        # What this transaction inserted carries its `stored_at`; what was there before does not.
        ids = [x.id for x in readings]
        fresh = set(conn.execute(sa.select(r.c.id).where(r.c.id.in_(ids), r.c.stored_at == now)).scalars())
        obs = [
            {"id": o.id, "identifier": o.identifier, "reading_id": x.id, "tenant": x.tenant,
             "patient": x.patient, "code": o.code, "effective": o.effective, "resource": o.resource}
            for x in readings for o in x.observations
        ]
        if not obs:
            return fresh, 0
        # No conflict target: a clash on the id (a reading sent again) or on the deduplication
        # identifier (the same measurement under another reading id) is skipped.
        conn.execute(self._insert(schema.observations).on_conflict_do_nothing(), obs)
        # A fresh reading's Observation is new unless the same measurement was stored before
        # (its deduplication identifier clashed); Observation ids derive from reading ids.
        o = schema.observations.c
        candidates = [row["id"] for row in obs if row["reading_id"] in fresh]
        new_observations = int(conn.execute(
            sa.select(sa.func.count()).where(o.id.in_(candidates))
        ).scalar_one()) if candidates else 0
        return fresh, new_observations

    def _store_devices(self, conn: sa.Connection, devices: dict[tuple[str, str], NewDevice], now: datetime) -> None:
        if not devices:
            return
        d = schema.devices
        ins = self._insert(d)
        # One statement for all of them; a device whose resource did not change is not rewritten.
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[d.c.id],
                set_={"resource": ins.excluded.resource, "updated_at": ins.excluded.updated_at},
                where=d.c.resource != ins.excluded.resource,
            ),
            [{"id": x.id, "tenant": tenant, "resource": x.resource, "updated_at": now}
             for (tenant, _), x in sorted(devices.items())],
        )

    def _store_events(self, conn: sa.Connection, events: list[NewEvent], now: datetime) -> set[str]:
        """Insert events; returns the ids new in this transaction."""
        if not events:
            return set()
        e = schema.events
        rows = [
            {"id": x.id, "tenant": x.tenant, "gateway": x.gateway, "kind": x.kind, "at": x.at,
             "detail": x.detail, "stored_at": now}
            for x in events
        ]
        conn.execute(self._insert(e).on_conflict_do_nothing(), rows)
        return set(conn.execute(
            sa.select(e.c.id).where(e.c.id.in_([x.id for x in events]), e.c.stored_at == now)
        ).scalars())

    # -- reading back -------------------------------------------------------------------------------

    def reading_bodies(self, gateway: str | None = None) -> list[str]:
        r = schema.readings.c
        query = sa.select(r.body).order_by(r.id)  # UUIDv7: the order the gateways took them
        if gateway is not None:
            query = query.where(r.gateway == gateway)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def count(self, table: str = "readings") -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[table])).scalar_one())

    def duplicate_ids(self) -> int:
        """Reading ids stored more than once (a test's check: the primary key makes it 0)."""
        r = schema.readings.c
        sub = sa.select(r.id).group_by(r.id).having(sa.func.count() > 1).subquery()
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar_one())

    def events(self, gateway: str | None = None) -> list[dict[str, Any]]:
        e = schema.events.c
        query = sa.select(e.id, e.tenant, e.gateway, e.kind, e.at, e.detail).order_by(e.at)
        if gateway is not None:
            query = query.where(e.gateway == gateway)
        with self.engine.connect() as conn:
            return [
                {**row._asdict(), "at": utc(row.at), "detail": json.loads(row.detail)}
                for row in conn.execute(query)
            ]

    def rejections(self) -> list[tuple[str, str]]:
        x = schema.rejections.c
        with self.engine.connect() as conn:
            return [(row.topic, row.reason) for row in conn.execute(sa.select(x.topic, x.reason).order_by(x.seq))]

    def refusals(self, gateway: str | None = None, *, limit: int = 100) -> list[RefusalRecord]:
        """The latest refused messages, newest first, of one gateway (the id its topic named) or of all."""
        x = schema.rejections.c
        query = sa.select(x.at, x.gateway, x.topic, x.code, x.reason, x.size).order_by(x.seq.desc()).limit(limit)
        if gateway is not None:
            query = query.where(x.gateway == gateway)
        with self.engine.connect() as conn:
            return [RefusalRecord(utc(r.at), r.gateway, r.topic, r.code, r.reason, r.size) for r in conn.execute(query)]

    def observations(
        self,
        *,
        patient: str | None = None,
        tenant: str | None = None,
        since: Sequence[tuple[str, datetime]] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[str]]:
        """(total matching, resources as JSON) ordered by effective time; `since` holds (op, time) pairs."""
        o = schema.observations.c
        where: list[sa.ColumnElement[bool]] = []
        if patient is not None:
            where.append(o.patient == patient)
        if tenant is not None:
            where.append(o.tenant == tenant)
        ops = {"ge": o.effective.__ge__, "gt": o.effective.__gt__, "le": o.effective.__le__,
               "lt": o.effective.__lt__, "eq": o.effective.__eq__}
        for op, when in since:
            where.append(ops[op](when))
        with self.engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(schema.observations).where(*where))
                        .scalar_one())
            query = sa.select(o.resource).where(*where).order_by(o.effective, o.id).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return total, list(conn.execute(query).scalars())

    def iter_observations(self, *, tenant: str | None = None, batch: int = 1000) -> Iterator[str]:
        o = schema.observations.c
        after = ""
        while True:
            query = sa.select(o.id, o.resource).where(o.id > after).order_by(o.id).limit(batch)
            if tenant is not None:
                query = query.where(o.tenant == tenant)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield row.resource
            after = rows[-1].id

    def device(self, device_id: str) -> str | None:
        d = schema.devices.c
        with self.engine.connect() as conn:
            return conn.execute(sa.select(d.resource).where(d.id == device_id)).scalar()

    def iter_devices(self, *, tenant: str | None = None) -> Iterator[str]:
        d = schema.devices.c
        query = sa.select(d.resource).order_by(d.id)
        if tenant is not None:
            query = query.where(d.tenant == tenant)
        with self.engine.connect() as conn:
            yield from conn.execute(query).scalars().all()


def _store_states(conn: sa.Connection, states: list[GatewayState]) -> None:
    g = schema.gateways.c
    p = sa.bindparam
    # A status older than the one kept (two workers, out of order) does not overwrite it.
    newer = sa.and_(g.id == p("b_id"), sa.or_(g.status_at.is_(None), g.status_at <= p("b_at")))
    offline = [{"b_id": x.gateway, "b_at": x.at} for x in states if x.state == "offline"]
    if offline:
        conn.execute(sa.update(schema.gateways).where(newer).values(state="offline", status_at=p("b_at")), offline)
    online = [
        {"b_id": x.gateway, "b_at": x.at, "b_version": x.software_version, "b_depth": x.outbox_depth,
         "b_used": x.outbox_used_percent, "b_quarantined": x.quarantined, "b_oldest": x.outbox_oldest_at,
         "b_faults": json.dumps(list(x.faults)), "b_devices": x.devices}
        for x in states if x.state != "offline"
    ]
    if online:
        conn.execute(
            sa.update(schema.gateways).where(newer).values(
                state="online", status_at=p("b_at"), software_version=p("b_version"),
                outbox_depth=p("b_depth"), outbox_used_percent=p("b_used"), quarantined=p("b_quarantined"),
                outbox_oldest_at=p("b_oldest"),
                faults=p("b_faults"), devices=p("b_devices"),
            ),
            online,
        )


def _store_seen_and_plans(conn: sa.Connection, seen: dict[str, datetime], plans: dict[str, tuple[str, int]]) -> None:
    g = schema.gateways.c
    p = sa.bindparam
    if seen:
        conn.execute(
            sa.update(schema.gateways)
            .where(g.id == p("b_id"), sa.or_(g.last_seen.is_(None), g.last_seen < p("b_seen")))
            .values(last_seen=p("b_seen")),
            [{"b_id": k, "b_seen": v} for k, v in sorted(seen.items())],
        )
    if plans:
        conn.execute(
            sa.update(schema.gateways)
            .where(g.id == p("b_id"), sa.or_(g.plan.is_(None), g.plan != p("b_plan"),
                                             g.plan_version != p("b_version")))
            .values(plan=p("b_plan"), plan_version=p("b_version")),
            [{"b_id": k, "b_plan": v[0], "b_version": v[1]} for k, v in sorted(plans.items())],
        )


def _kit_causes(conn: sa.Connection, events: list[NewEvent], states: list[GatewayState]) -> list[AlertCause]:
    """Alerts from new events and from status reports, for the registered kits they come from."""
    ids = sorted({x.gateway for x in events} | {x.gateway for x in states if x.state != "offline"})
    if not ids:
        return []
    g = schema.gateways.c
    known = {row.id: (row.tenant, row.patient)
             for row in conn.execute(sa.select(g.id, g.tenant, g.patient).where(g.id.in_(ids)))}
    patients = {k: v[1] for k, v in known.items()}
    return event_causes(events, patients) + status_causes(states, known)


def _refusal_causes(conn: sa.Connection, rejections: list[NewRejection], now: datetime) -> list[AlertCause]:
    """A refused message on a kit's topic is an alert for the coordinator (an unknown or moved kit, a reading
    for a patient the registry does not know): its readings wait on the kit, never dropped."""
    claimed: dict[tuple[str, str], str] = {}
    for x in rejections:
        try:
            tenant, gateway, _ = parse_up_topic(x.topic)
        except ValueError:
            continue  # no tenant to tell: the rejection row is all there is
        claimed[(tenant, gateway)] = x.reason
    if not claimed:
        return []
    g = schema.gateways.c
    known = {row.id: row for row in conn.execute(
        sa.select(g.id, g.tenant, g.patient).where(g.id.in_(sorted({k[1] for k in claimed})))
    )}
    causes = []
    for (tenant, gateway), reason in sorted(claimed.items()):
        row = known.get(gateway)
        # A registered kit's alert goes to its own tenant (even when it spoke on another tenant's topic);
        # an unknown kit's to the tenant its topic names, the only one there is.
        owner, patient = (row.tenant, row.patient) if row is not None else (tenant, "")
        causes.append(AlertCause(tenant=owner, patient=patient, gateway=gateway, kind="refused",
                                 subject="kit", severity="info", at=now, detail=reason))
    return causes


def _gateway_of(topic: str) -> str | None:
    try:
        return parse_up_topic(topic)[1][:64]
    except ValueError:
        return None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an ack promises the reading survives a power cut
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
