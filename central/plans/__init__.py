"""The plan tool for clinicians: keys, trust store, drafting, plain-language diff, signing, publishing, audit."""

from __future__ import annotations

from central.plans.audit import AuditEntry, AuditLog, SqliteAuditLog
from central.plans.drafting import describe_changes, draft, effective, parse_override, unsigned
from central.plans.keys import PublicKeyFile, generate, load_private, load_public
from central.plans.publish import publish_config

__all__ = [
    "AuditEntry",
    "AuditLog",
    "PublicKeyFile",
    "SqliteAuditLog",
    "describe_changes",
    "draft",
    "effective",
    "generate",
    "load_private",
    "load_public",
    "parse_override",
    "publish_config",
    "unsigned",
]
