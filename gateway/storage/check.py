"""The whole-file check `status` runs: SQLite's own structure check, then every sealed record read
back and authenticated under its key, table by table (issue 19.4: `status` always shows damage).

It reads every page the tables use, so it takes seconds with a million records; the running gateway
never calls it (its health check reads counters and index ends only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from cryptography.exceptions import InvalidTag

from gateway.storage.connection import Connection, is_damage
from gateway.storage.keyring import Keyring
from gateway.storage.sealing import document_aad, event_aad, history_aad, outbox_aad, unassigned_aad

Check = Callable[[tuple[object, ...]], tuple[int, bytes, bytes] | None]


def _waiting(aad: Callable[[str, int], bytes]) -> Check:
    def parts(row: tuple[object, ...]) -> tuple[int, bytes, bytes] | None:
        record_id, key_version, sealed = row
        if isinstance(record_id, str) and isinstance(key_version, int) and isinstance(sealed, bytes):
            return key_version, sealed, aad(record_id, key_version)
        return None
    return parts


def _history(row: tuple[object, ...]) -> tuple[int, bytes, bytes] | None:
    kind, effective, seq, record_id, key_version, kept = row
    if (isinstance(kind, int) and isinstance(effective, float | int) and isinstance(seq, int)
            and isinstance(record_id, str) and isinstance(key_version, int) and isinstance(kept, bytes)):
        return key_version, kept, history_aad(record_id, kind, float(effective), seq, key_version)
    return None


def _document(row: tuple[object, ...]) -> tuple[int, bytes, bytes] | None:
    kind, version, key_version, sealed = row
    if (isinstance(kind, str) and isinstance(version, int) and isinstance(key_version, int)
            and isinstance(sealed, bytes)):
        return key_version, sealed, document_aad(kind, version, key_version)
    return None


# (what the records are, the query, how a row becomes key version, sealed value and associated data)
_TABLES: list[tuple[str, str, Check]] = [
    ("readings waiting", "SELECT id, key_version, sealed FROM outbox", _waiting(outbox_aad)),
    ("events waiting", "SELECT id, key_version, sealed FROM events", _waiting(event_aad)),
    ("history entries", "SELECT kind, effective, seq, id, key_version, kept FROM history WHERE kept IS NOT NULL",
     _history),
    ("kept documents", "SELECT kind, version, key_version, sealed FROM documents", _document),
    ("weighings to confirm", "SELECT id, key_version, sealed FROM unassigned", _waiting(unassigned_aad)),
]


def check_file(conn: Connection, keyring: Keyring) -> list[str]:
    """What is damaged in the file, one line per finding (empty: every record reads and authenticates).
    Raises sqlite3.OperationalError for a passing condition (I/O error, locked); never for damage."""
    found: list[str] = []
    with conn.lock:
        try:
            problems = [" ".join(str(r[0]).split()) for r in conn.db.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            problems = [str(exc)]
        if problems != ["ok"]:
            found.append(f"SQLite finds its structure broken ({'; '.join(problems)})")
        for what, sql, parts in _TABLES:
            found.extend(_check_table(conn, keyring, what, sql, parts))
    return found


def _check_table(conn: Connection, keyring: Keyring, what: str, sql: str, parts: Check) -> list[str]:
    failed = 0
    try:
        for row in conn.db.execute(sql):
            opened = parts(row)
            try:
                if opened is None:
                    raise InvalidTag
                keyring.unseal(*opened)
            except InvalidTag:
                failed += 1
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return [f"a page of the {what} is unreadable ({exc})"]
    return [f"{failed} of the {what} fail authentication"] if failed else []
