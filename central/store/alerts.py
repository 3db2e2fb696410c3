"""Alerts made where their cause is stored, in the same transaction (`Database.commit`, the kit checks):
a red or yellow reading, a refused kit, a kit's event (measurement overdue, storage fault, plan
rejected, clock uncertain), its status (faults, low battery, readings stuck in its outbox), a silent
kit. Nothing acked is without its alert.

One open alert per (tenant, kind, subject, severity, patient or kit): a second red of the same kind for
the same patient while the first is open or in progress joins it (its reading is linked, its count and
version go up). The `open_key` column is unique per tenant and cleared when the alert is closed, so two
workers storing two reds at once still make one alert.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from central.store import schema

SYSTEM = "system"
SEVERITY_OF_ZONE = {"red": "red", "yellow": "yellow"}

Insert = Callable[[sa.Table], Any]


@dataclass(frozen=True)
class AlertCause:
    """What an alert is raised for; `reading_ids` are the readings behind it (none for a kit alert)."""

    tenant: str
    patient: str
    gateway: str | None
    kind: str
    subject: str
    severity: str
    at: datetime
    detail: str = ""
    reading_ids: tuple[str, ...] = ()
    join: bool = True  # False: when one is open already, leave it alone (a repeated status says nothing new)

    @property
    def open_key(self) -> str:
        who = self.patient if self.kind == "reading" else f"kit:{self.gateway}"
        return f"{self.kind}|{self.subject}|{self.severity}|{who}"[:300]


def reading_causes(readings: Iterable[Any]) -> list[AlertCause]:
    """One cause per (patient, type, zone) among freshly stored red and yellow readings."""
    grouped: dict[tuple[str, str, str, str], list[Any]] = {}
    for r in readings:
        severity = SEVERITY_OF_ZONE.get(r.zone)
        if severity is not None:
            grouped.setdefault((r.tenant, r.patient, r.type, severity), []).append(r)
    return [
        AlertCause(tenant=tenant, patient=patient, gateway=rs[0].gateway, kind="reading", subject=kind,
                   severity=severity, at=min(r.effective for r in rs), reading_ids=tuple(r.id for r in rs))
        for (tenant, patient, kind, severity), rs in sorted(grouped.items())
    ]


# What a kit's event means on the worklist: (alert kind, severity). Events not named here (recovered,
# below the limit, a plan applied, a trust store updated) raise nothing.
EVENT_ALERTS: dict[str, tuple[str, str]] = {
    "measurement_overdue": ("overdue", "info"),
    "storage_fault": ("fault", "info"),
    "outbox_near_limit": ("outbox", "info"),
    "outbox_record_quarantined": ("fault", "info"),
    "plan_rejected": ("plan_rejected", "info"),
    "reading_time_uncertain": ("clock", "info"),
    "glucose_out_of_range": ("device_urgent", "red"),
}
LOW_BATTERY = 20  # percent
OUTBOX_STUCK = timedelta(hours=6)  # a reading waiting this long on the kit has not reached us


def event_causes(events: Iterable[Any], patients: dict[str, str]) -> list[AlertCause]:
    """Alerts for a kit's events (measurement overdue, storage fault, plan rejected, clock uncertain...)."""
    causes = []
    for e in events:
        mapped = EVENT_ALERTS.get(e.kind)
        if mapped is None:
            continue
        kind, severity = mapped
        try:
            detail = json.loads(e.detail)
        except ValueError:
            detail = {}
        subject = str(detail.get("kind", e.kind)) if kind == "overdue" else e.kind
        text = ", ".join(f"{k}={v}" for k, v in sorted(detail.items()) if k not in ("reading",))
        causes.append(AlertCause(tenant=e.tenant, patient=patients.get(e.gateway, ""), gateway=e.gateway, kind=kind,
                                 subject=subject, severity=severity, at=e.at, detail=text))
    return causes


def status_causes(states: Iterable[Any], patients: dict[str, tuple[str, str]]) -> list[AlertCause]:
    """Alerts from a kit's status: faults it reports, a device with a low battery, readings stuck in its
    outbox longer than `OUTBOX_STUCK`. `patients` maps gateway -> (tenant, patient)."""
    causes = []
    for x in states:
        if x.state == "offline" or x.gateway not in patients:
            continue
        tenant, patient = patients[x.gateway]

        def cause(kind: str, subject: str, detail: str, tenant: str = tenant, patient: str = patient,
                  at: datetime = x.at, gateway: str = x.gateway) -> AlertCause:
            return AlertCause(tenant=tenant, patient=patient, gateway=gateway, kind=kind, subject=subject,
                              severity="info", at=at, detail=detail, join=False)

        causes += [cause("fault", fault[:64], fault) for fault in x.faults]
        try:
            devices = json.loads(x.devices)
        except ValueError:
            devices = []
        for d in devices if isinstance(devices, list) else []:
            battery = d.get("battery") if isinstance(d, dict) else None
            if isinstance(battery, int) and battery < LOW_BATTERY:
                causes.append(cause("battery", str(d.get("kind", "device"))[:64],
                                    f"{d.get('kind', 'device')} {d.get('id', '')}: battery {battery} %"))
        if x.outbox_oldest_at is not None and x.at - x.outbox_oldest_at > OUTBOX_STUCK:
            hours = int((x.at - x.outbox_oldest_at).total_seconds() // 3600)
            causes.append(cause("outbox", "stuck", f"{x.outbox_depth or 0} reading(s) waiting on the kit, the "
                                f"oldest for {hours} h"))
    return causes


def raise_alerts(conn: sa.Connection, insert: Insert, causes: Sequence[AlertCause], now: datetime) -> int:
    """Open an alert per cause, or join the open one; returns how many were opened."""
    return sum(_raise(conn, insert, cause, now) for cause in causes)


def _raise(conn: sa.Connection, insert: Insert, cause: AlertCause, now: datetime) -> int:
    a = schema.alerts
    key = cause.open_key
    for _ in range(3):  # a nurse may close the open one between our insert and our join
        new_id = str(uuid.uuid4())
        conn.execute(insert(a).on_conflict_do_nothing(), [{
            "id": new_id, "tenant": cause.tenant, "patient": cause.patient, "gateway": cause.gateway,
            "kind": cause.kind, "subject": cause.subject[:64], "severity": cause.severity, "state": "open",
            "open_key": key, "detail": cause.detail[:500], "count": max(1, len(cause.reading_ids)),
            "measured_at": cause.at, "latest_at": cause.at, "opened_at": now, "changed_at": now, "version": 1,
        }])
        found = conn.execute(sa.select(a.c.id).where(a.c.tenant == cause.tenant, a.c.open_key == key)).scalar()
        if found is None:
            continue
        if found == new_id:
            _link(conn, insert, found, cause, now, "opened")
            return 1
        if not cause.join:
            return 0
        joined = conn.execute(
            sa.update(a).where(a.c.id == found, a.c.open_key == key).values(
                count=a.c.count + max(1, len(cause.reading_ids)), version=a.c.version + 1, changed_at=now,
                latest_at=sa.case((a.c.latest_at < cause.at, cause.at), else_=a.c.latest_at),
                detail=cause.detail[:500] if cause.detail else a.c.detail,
            )
        ).rowcount
        if joined:
            _link(conn, insert, found, cause, now, "joined")
            return 0
    raise RuntimeError(f"alert {key!r}: could not open or join it")  # pragma: no cover


def _link(conn: sa.Connection, insert: Insert, alert_id: str, cause: AlertCause, now: datetime, action: str) -> None:
    if cause.reading_ids:
        conn.execute(insert(schema.alert_readings).on_conflict_do_nothing(),
                     [{"alert_id": alert_id, "reading_id": r} for r in cause.reading_ids])
    if action == "opened" or cause.reading_ids:
        # A kit refused again and again (it retries) counts up; it does not fill the trail.
        detail = f"{len(cause.reading_ids)} reading(s)" if cause.reading_ids else cause.detail
        conn.execute(sa.insert(schema.alert_events), [{
            "alert_id": alert_id, "tenant": cause.tenant, "at": now, "actor": SYSTEM, "action": action,
            "detail": detail[:500],
        }])
