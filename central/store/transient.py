"""Which database failures are worth waiting for: the same transaction, tried again a little later, can
succeed. An ingest worker waits on these (acking nothing meanwhile) and treats every other failure as a
refusal of what it tried to store.

Recognised by exception type and error code, never by the words of the message: a refusal that quotes a
value with "connection" or "locked" in it is still a refusal, and a server in another language is still
restarting.

- PostgreSQL (psycopg 3): an `OperationalError` without a SQLSTATE (libpq could not reach the server or
  lost it: refused, reset, timed out, no such host); SQLSTATE class 08 (connection exception), 57P01 /
  57P02 / 57P03 (admin shutdown, crash shutdown, cannot connect now: a restart), class 53 (insufficient
  resources: too many connections, disk full, out of memory), and 40001 / 40P01 (serialization failure,
  deadlock: the server rolled the transaction back so that it can be tried again).
- SQLite: `SQLITE_BUSY` and `SQLITE_LOCKED`, extended codes included ("database is locked", "database
  table is locked": another writer holds it).
- Either: a connection SQLAlchemy found broken and invalidated.
"""

from __future__ import annotations

import sqlite3
import sys
from enum import StrEnum

import sqlalchemy as sa


class Transient(StrEnum):
    """Why a failed transaction is worth trying again (the words fit "database <reason>")."""

    UNAVAILABLE = "unavailable"  # no connection, or the server is shutting down or starting up
    OUT_OF_RESOURCES = "out of resources"  # SQLSTATE class 53: connections, disk, memory
    BUSY = "busy"  # SQLite: another connection holds the lock
    CONFLICT = "in conflict with another transaction"  # serialization failure or deadlock: rolled back


_PG_CONNECTION_CLASS = "08"
_PG_RESOURCES_CLASS = "53"
_PG_RESTARTING = frozenset({"57P01", "57P02", "57P03"})  # admin shutdown, crash shutdown, cannot connect now
_PG_CONFLICT = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
_SQLITE_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_SQLITE_PRIMARY_CODE = 0xFF  # an extended result code carries its primary code in the low byte


def transient(exc: BaseException) -> Transient | None:
    """Why `exc` (a SQLAlchemy `DBAPIError` or the driver's own exception) is worth trying again after a
    pause, or None when it is not: a refusal that will be the same next time."""
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return Transient.UNAVAILABLE
        return None if exc.orig is None else transient(exc.orig)
    if isinstance(exc, sqlite3.Error):
        return Transient.BUSY if exc.sqlite_errorcode & _SQLITE_PRIMARY_CODE in _SQLITE_BUSY else None
    return _postgres(exc)


def _postgres(exc: BaseException) -> Transient | None:
    # psycopg is only loaded where PostgreSQL is used (the embedded central has SQLite alone); an
    # exception of psycopg's means it is loaded.
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    sqlstate: str | None = exc.sqlstate
    if sqlstate is None:  # raised by libpq itself, not sent by a server
        return Transient.UNAVAILABLE if isinstance(exc, psycopg.OperationalError) else None
    if sqlstate.startswith(_PG_CONNECTION_CLASS) or sqlstate in _PG_RESTARTING:
        return Transient.UNAVAILABLE
    if sqlstate.startswith(_PG_RESOURCES_CLASS):
        return Transient.OUT_OF_RESOURCES
    if sqlstate in _PG_CONFLICT:
        return Transient.CONFLICT
    return None
