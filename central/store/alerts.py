"""Alerts made where their cause is stored, in the same transaction (`Database.commit`, the kit checks):
a red or yellow reading, a refused kit, a silent kit. Nothing acked is without its alert.

One open alert per (tenant, kind, subject, severity, patient or kit): a second red of the same kind for
the same patient while the first is open or in progress joins it (its reading is linked, its count and
version go up). The `open_key` column is unique per tenant and cleared when the alert is closed, so two
workers storing two reds at once still make one alert.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
