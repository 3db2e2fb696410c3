"""The worklist's reads and writes over the central database: users, the alert list of one tenant, one
alert with its readings, trail and notes, the nurses' actions (optimistic concurrency on `version`),
the audit trail, and the kit checks (silent kits) run with a clock passed in.

Every query names the tenant: a user of tenant A asking for tenant B's alert gets `None` (the page
answers 404 and audits the attempt), never the alert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from central.errors import CentralError
from central.store import AlertCause, Database, raise_alerts, utc
from central.store import schema as t

ROLES = ("nurse", "coordinator")
"""The roles of the follow-up service's people, per tenant."""
SEVERITY_ORDER = {"red": 0, "yellow": 1}
OPEN_STATES = ("open", "in_progress")
ESCALATE_TO = ("gp", "specialist")
# What each action may start from, and the state it leaves.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "take": (("open", "in_progress"), "in_progress"),
    "done": (("open", "in_progress"), "done"),
    "escalate": (("open", "in_progress"), "escalated"),
    "thresholds": (("open", "in_progress"), None),  # asked the doctor for new thresholds: state unchanged
    "note": (("open", "in_progress", "done", "escalated"), None),
}
SILENT_AFTER = timedelta(hours=48)


class Conflict(Exception):
    """The alert changed since the page showed it (another nurse acted first): nothing was written."""

    def __init__(self, current: AlertDetail) -> None:
        super().__init__("the alert was changed meanwhile")
        self.current = current


class NotAllowed(Exception):
    """The action does not fit the alert's state (closing a closed alert) or its input is wrong."""


@dataclass(frozen=True)
class User:
    """A person of the follow-up service: one tenant, one role (nurse or coordinator)."""

    name: str
    tenant: str
    role: str
    password_hash: str


@dataclass(frozen=True)
class AlertRow:
    """One alert as the list shows it."""

    id: str
    tenant: str
    patient: str
    gateway: str | None
    kind: str
    subject: str
    severity: str
    state: str
    assignee: str | None
    detail: str
    count: int
    measured_at: datetime
    latest_at: datetime
    opened_at: datetime
    version: int


@dataclass(frozen=True)
class TrailLine:
    """One line of an alert's history or notes: when, who, what, and the detail (a note's text)."""

    at: datetime
    actor: str
    action: str
    detail: str


@dataclass(frozen=True)
class ReadingLine:
    """A reading as the alert page shows it: type, time, zone and its values with units."""

    id: str
    type: str
    effective: datetime
    zone: str
    values: dict[str, str]


@dataclass(frozen=True)
class Kit:
    """What the registry knows of the kit behind an alert: its state, plan in use, devices and batteries."""

    gateway: str
    state: str
    last_seen: datetime | None
    plan: str | None
    plan_version: int | None
    devices: list[tuple[str, str, int | None]]  # (kind, id, battery percent)
    faults: list[str]


@dataclass(frozen=True)
class Stopped:
    """A patient whose kit has sent no reading for the period (or none since it was provisioned)."""

    patient: str
    gateway: str
    last_measured: datetime | None
    provisioned_at: datetime


@dataclass(frozen=True)
class AlertDetail:
    """One alert with what is behind it: its readings, history, notes, the patient's last 14 days, the kit."""

    alert: AlertRow
    readings: list[ReadingLine]
    trail: list[TrailLine]
    notes: list[TrailLine]
    recent: list[ReadingLine]  # the patient's last 14 days
    kit: Kit | None = None


def _row(r: Any) -> AlertRow:
    return AlertRow(
        id=r.id, tenant=r.tenant, patient=r.patient, gateway=r.gateway, kind=r.kind, subject=r.subject,
        severity=r.severity, state=r.state, assignee=r.assignee, detail=r.detail, count=r.count,
        measured_at=utc(r.measured_at), latest_at=utc(r.latest_at), opened_at=utc(r.opened_at), version=r.version,
    )


def _reading(r: Any) -> ReadingLine:
    try:
        components = json.loads(r.body).get("components", {})
        values = {k: f"{v['value']} {v['unit']}" for k, v in components.items()}
    except (ValueError, AttributeError, KeyError, TypeError):
        values = {}
    return ReadingLine(id=r.id, type=r.type, effective=utc(r.effective), zone=r.zone, values=values)


class Worklist:
    """The worklist over one `Database` (SQLite or PostgreSQL). Blocking: call it off the event loop."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine

    # -- users --------------------------------------------------------------------------------------

    def add_user(self, name: str, *, tenant: str, role: str, password_hash: str) -> None:
        """Add a user, or replace the tenant, role and password of one of that name."""
        if role not in ROLES:
            raise CentralError(f"role {role!r}: one of {', '.join(ROLES)}")
        if not name or not tenant or len(name) > 64 or len(tenant) > 64:
            raise CentralError("user and tenant names: 1 to 64 characters")
        u = t.users
        values = {"tenant": tenant, "role": role, "password_hash": password_hash, "disabled": False}
        with self.engine.begin() as conn:
            if conn.execute(sa.update(u).where(u.c.name == name).values(**values)).rowcount == 0:
                conn.execute(sa.insert(u).values(name=name, created_at=datetime.now(UTC), **values))
            _audit(conn, tenant, "dho-central", "user_set", name, f"role {role}")

    def user(self, name: str) -> User | None:
        """The enabled user of that name, or None."""
        u = t.users.c
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(u.name, u.tenant, u.role, u.password_hash)
                             .where(u.name == name, u.disabled.is_(False))).first()
        return None if r is None else User(r.name, r.tenant, r.role, r.password_hash)

    # -- the list -------------------------------------------------------------------------------------

    def alerts(self, tenant: str, *, kind: str | None = None, assignee: str | None = None,
               closed: bool = False) -> list[AlertRow]:
        """Open (or closed) alerts of one tenant: red, then yellow, then the rest; oldest measured first."""
        a = t.alerts.c
        rank = sa.case({"red": 0, "yellow": 1}, value=a.severity, else_=2)
        states = ("done", "escalated") if closed else OPEN_STATES
        query = sa.select(t.alerts).where(a.tenant == tenant, a.state.in_(states))
        if kind:
            query = query.where(a.kind == kind)
        if assignee:
            query = query.where(a.assignee == assignee)
        query = query.order_by(rank, a.measured_at, a.id) if not closed else query.order_by(a.changed_at.desc())
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query.limit(500))]

    def change_mark(self, tenant: str) -> int:
        """A number that grows whenever the tenant's list changes (the newest trail line)."""
        e = t.alert_events.c
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(e.seq)).where(e.tenant == tenant)).scalar() or 0)

    def alert(self, tenant: str, alert_id: str) -> AlertDetail | None:
        """One alert of this tenant with what is behind it; None when this tenant has no such alert."""
        a, ar, r = t.alerts.c, t.alert_readings.c, t.readings.c
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(t.alerts).where(a.id == alert_id, a.tenant == tenant)).first()
            if found is None:
                return None
            row = _row(found)
            readings = [_reading(x) for x in conn.execute(
                sa.select(r.id, r.type, r.effective, r.zone, r.body)
                .join(t.alert_readings, ar.reading_id == r.id)
                .where(ar.alert_id == alert_id, r.tenant == tenant).order_by(r.effective)
            )]
            recent = [] if not row.patient else [_reading(x) for x in conn.execute(
                sa.select(r.id, r.type, r.effective, r.zone, r.body)
                .where(r.tenant == tenant, r.patient == row.patient,
                       r.effective >= row.latest_at - timedelta(days=14))
                .order_by(r.type, r.effective.desc()).limit(400)
            )]
            e, n = t.alert_events.c, t.alert_notes.c
            trail = [TrailLine(utc(x.at), x.actor, x.action, x.detail) for x in conn.execute(
                sa.select(e.at, e.actor, e.action, e.detail).where(e.alert_id == alert_id).order_by(e.seq))]
            notes = [TrailLine(utc(x.at), x.author, "note", x.text) for x in conn.execute(
                sa.select(n.at, n.author, n.text).where(n.alert_id == alert_id).order_by(n.seq))]
        return AlertDetail(row, readings, trail, notes, recent, self._kit(tenant, row.gateway))

    def _kit(self, tenant: str, gateway: str | None) -> Kit | None:
        if gateway is None:
            return None
        g = t.gateways.c
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(t.gateways).where(g.id == gateway, g.tenant == tenant)).first()
        if r is None:
            return None
        try:
            devices = [(str(d.get("kind", "")), str(d.get("id", "")), d.get("battery"))
                       for d in json.loads(r.devices) if isinstance(d, dict)]
            faults = [str(f) for f in json.loads(r.faults)]
        except (ValueError, TypeError):
            devices, faults = [], []
        return Kit(gateway=r.id, state=r.state, last_seen=utc(r.last_seen) if r.last_seen else None, plan=r.plan,
                   plan_version=r.plan_version, devices=devices, faults=faults)

    def stopped(self, tenant: str, now: datetime, *, days: int = 14) -> list[Stopped]:
        """The "stopped measuring" list: the tenant's kits with no reading for `days` (and provisioned
        at least that long ago), longest silent first."""
        g, r = t.gateways.c, t.readings.c
        limit = now - timedelta(days=days)
        last = (sa.select(r.gateway, sa.func.max(r.effective).label("last"))
                .where(r.tenant == tenant).group_by(r.gateway).subquery())
        query = (sa.select(g.id, g.patient, g.provisioned_at, last.c.last)
                 .select_from(t.gateways.outerjoin(last, last.c.gateway == g.id))
                 .where(g.tenant == tenant, g.provisioned_at < limit,
                        sa.or_(last.c.last.is_(None), last.c.last < limit)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = [Stopped(x.patient, x.id, utc(x.last) if x.last else None, utc(x.provisioned_at)) for x in rows]
        return sorted(found, key=lambda x: (x.last_measured or x.provisioned_at, x.gateway))

    def exists_elsewhere(self, tenant: str, alert_id: str) -> str | None:
        """The tenant owning `alert_id` when it is not `tenant` (for the audit of a refused access)."""
        a = t.alerts.c
        with self.engine.connect() as conn:
            other = conn.execute(sa.select(a.tenant).where(a.id == alert_id)).scalar()
        return other if other is not None and other != tenant else None

    # -- actions --------------------------------------------------------------------------------------

    def act(self, user: User, alert_id: str, action: str, *, version: int, text: str = "", to: str = "") -> int:
        """Take, note, close, escalate or ask for new thresholds, if the alert is still at `version`.

        Returns the new version (a note is added whatever the version). Raises `Conflict` when someone
        else changed it first, `NotAllowed` when the action does not fit its state, `LookupError` when
        this user's tenant has no such alert."""
        if action not in TRANSITIONS:
            raise NotAllowed(f"unknown action {action!r}")
        text = text.strip()
        if action == "note" and not text:
            raise NotAllowed("a note needs text")
        if action == "escalate" and to not in ESCALATE_TO:
            raise NotAllowed("escalate to the GP or the specialist")
        if len(text) > 4000:
            raise NotAllowed("a note is at most 4000 characters")
        starts, ends = TRANSITIONS[action]
        a = t.alerts.c
        now = datetime.now(UTC)
        values: dict[str, Any] = {"version": a.version + 1, "changed_at": now}
        if ends is not None:
            values["state"] = ends
        if action == "take":
            values["assignee"] = user.name
        if ends in ("done", "escalated"):
            values["open_key"] = None  # the next red of this kind opens a new alert
        with self.engine.begin() as conn:
            # A note adds to the alert and changes nothing another nurse relies on: no version check.
            same = sa.true() if action == "note" else a.version == version
            changed = conn.execute(sa.update(t.alerts).where(
                a.id == alert_id, a.tenant == user.tenant, same, a.state.in_(starts),
            ).values(**values)).rowcount
            if changed:
                self._record(conn, user, alert_id, action, text, to, now)
                return int(conn.execute(sa.select(a.version).where(a.id == alert_id)).scalar_one())
            current = conn.execute(sa.select(a.state, a.version).where(a.id == alert_id, a.tenant == user.tenant)
                                   ).first()
        if current is None:
            raise LookupError(alert_id)
        if current.version == version:
            raise NotAllowed(f"the alert is {current.state}")
        detail_now = self.alert(user.tenant, alert_id)
        if detail_now is None:
            raise LookupError(alert_id)
        raise Conflict(detail_now)

    def _record(self, conn: sa.Connection, user: User, alert_id: str, action: str, text: str, to: str,
                now: datetime) -> None:
        detail = {"escalate": f"to {to}", "note": ""}.get(action, "")
        conn.execute(sa.insert(t.alert_events), [{
            "alert_id": alert_id, "tenant": user.tenant, "at": now, "actor": user.name,
            "action": _PAST[action], "detail": detail,
        }])
        if text:
            conn.execute(sa.insert(t.alert_notes), [{
                "alert_id": alert_id, "tenant": user.tenant, "at": now, "author": user.name, "text": text}])
        _audit(conn, user.tenant, user.name, _PAST[action], alert_id, detail)


    # -- audit ----------------------------------------------------------------------------------------

    def audit(self, tenant: str, actor: str, action: str, target: str = "", detail: str = "") -> None:
        """Add a line to the tenant's audit trail (who, what, about what, when: now)."""
        with self.engine.begin() as conn:
            _audit(conn, tenant, actor, action, target, detail)

    def audit_trail(self, tenant: str, limit: int = 500) -> list[tuple[datetime, str, str, str, str]]:
        """(at, actor, action, target, detail), newest first."""
        x = t.audit.c
        with self.engine.connect() as conn:
            return [(utc(r.at), r.actor, r.action, r.target, r.detail) for r in conn.execute(
                sa.select(x.at, x.actor, x.action, x.target, x.detail).where(x.tenant == tenant)
                .order_by(x.seq.desc()).limit(limit))]

    # -- kit checks -----------------------------------------------------------------------------------

    def check_kits(self, now: datetime, *, silent_after: timedelta = SILENT_AFTER) -> int:
        """Raise a "silent" alert for every kit not heard from for `silent_after` (never heard: since it was
        provisioned). Deterministic in `now`; returns how many alerts were opened (a kit still silent joins
        its open alert, which is not counted again)."""
        g = t.gateways.c
        limit = now - silent_after
        with self.engine.begin() as conn:
            quiet = conn.execute(sa.select(g.id, g.tenant, g.patient, g.last_seen, g.provisioned_at).where(
                sa.func.coalesce(g.last_seen, g.provisioned_at) < limit).order_by(g.id)).all()
            a = t.alerts.c
            already = set(conn.execute(sa.select(a.gateway).where(a.kind == "silent", a.open_key.is_not(None))
                                       ).scalars())
            causes = [
                AlertCause(tenant=q.tenant, patient=q.patient, gateway=q.id, kind="silent", subject="kit",
                           severity="info", at=utc(q.last_seen or q.provisioned_at),
                           detail=f"not heard from since {utc(q.last_seen or q.provisioned_at):%Y-%m-%d %H:%M} UTC")
                for q in quiet if q.id not in already
            ]
            return raise_alerts(conn, self.database.insert, causes, now)


_PAST = {"take": "taken", "done": "done", "escalate": "escalated", "thresholds": "thresholds_asked",
         "note": "noted"}


def _audit(conn: sa.Connection, tenant: str, actor: str, action: str, target: str, detail: str) -> None:
    conn.execute(sa.insert(t.audit), [{"tenant": tenant, "at": datetime.now(UTC), "actor": actor[:64],
                                       "action": action[:32], "target": target[:100], "detail": detail[:500]}])
