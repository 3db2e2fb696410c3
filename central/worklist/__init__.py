"""The follow-up service's worklist: the alerts of one tenant (red, yellow, refused and silent kits),
the nurses' actions on them (take, note, done, escalate, ask for new thresholds) with optimistic
concurrency, the people (nurse and coordinator per tenant, scrypt-hashed passwords), the audit trail
of every view and action, and the pages a nurse works in (`dho-central worklist serve`).

Alerts for readings and refused kits are made by the store in the ingest transaction
(`central.store.alerts`); this room reads them and records what people do about them.
"""

from __future__ import annotations

from central.worklist.app import create_app
from central.worklist.hours import ServiceHours, TenantHours
from central.worklist.security import ProxySignOn, hash_password, verify_password
from central.worklist.server import WorklistServer
from central.worklist.store import (
    ROLES,
    AlertDetail,
    AlertRow,
    Conflict,
    Kit,
    NotAllowed,
    Stopped,
    User,
    Worklist,
)

__all__ = [
    "ROLES",
    "AlertDetail",
    "AlertRow",
    "Conflict",
    "Kit",
    "NotAllowed",
    "ProxySignOn",
    "ServiceHours",
    "Stopped",
    "TenantHours",
    "User",
    "Worklist",
    "WorklistServer",
    "create_app",
    "hash_password",
    "verify_password",
]
