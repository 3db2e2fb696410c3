"""Schema versions of the outbox file (PRAGMA user_version), and the move from one to the next.

Version 1 (before issue 10.1/10.6): an AUTOINCREMENT outbox with a unique index on `id`, a `seen`
table of UNKEYED SHA-256 digests of the raw measurement bytes (the leak), and a history table keyed
by id with a clear time index, unpadded ciphertexts. Version 2 moves every reading and history entry
across in one transaction (re-sealed padded under their new associated data; keyed kind tags),
and drops the digests: a measurement stored before the upgrade and fetched again from a device's
memory is then stored again under a new id (the central service sees two readings with the same
values and device time; it happens at most once per record, only across the upgrade).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.storage.schema import seq_of
from gateway.storage.sealing import (
    history_aad,
    history_v1_aad,
    kind_tag,
    outbox_aad,
    outbox_v1_aad,
    seal,
    unseal_v1,
    unwrap_data_key,
    wrap_tag_key,
)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def migrate(db: sqlite3.Connection, kek: bytes, version: int, schema: str) -> None:
    """Bring the file to schema `version` (`schema`: its CREATE ... IF NOT EXISTS statements). A version 1
    file this key does not open is left untouched: opening its keys then says so."""
    (current,) = db.execute("PRAGMA user_version").fetchone()
    if int(current) < version and "seen" in _tables(db) and not _from_v1(db, AESGCM(kek), schema):
        return  # not this key's file: SealedOutbox says so when it loads the keys; nothing is touched
    # Every statement is CREATE ... IF NOT EXISTS: a table added to the schema later appears in older files.
    db.executescript(schema)
    if int(current) < version:
        db.execute(f"PRAGMA user_version = {version}")


def _from_v1(db: sqlite3.Connection, kek: AESGCM, schema: str) -> bool:
    """Move a version 1 file to `schema` in one transaction; False (nothing touched) when `kek` does
    not open its data keys."""
    keys = _v1_keys(db, kek)
    if keys is None:
        return False
    db.execute("BEGIN IMMEDIATE")
    try:
        _create_v2_tables(db, schema)
        tag_key = os.urandom(32)
        db.execute("INSERT INTO tag_key VALUES (1, ?)", (wrap_tag_key(kek, tag_key),))
        _move_readings(db, keys)
        _move_history(db, keys, tag_key)
        for table in ("seen", "outbox_v1", "history_v1"):
            db.execute(f"DROP TABLE {table}")  # secure_delete: the digests are overwritten in the file
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return True


def _v1_keys(db: sqlite3.Connection, kek: AESGCM) -> dict[int, AESGCM] | None:
    """Every data key of the file, or None if `kek` does not open one of them (another file's key)."""
    keys: dict[int, AESGCM] = {}
    for version, wrapped in db.execute("SELECT version, wrapped FROM data_keys"):
        try:
            keys[int(version)] = unwrap_data_key(kek, bytes(wrapped), int(version))
        except InvalidTag:
            return None
    return keys


def _create_v2_tables(db: sqlite3.Connection, schema: str) -> None:
    """Rename the version 1 outbox and history aside and create the new tables, inside the transaction."""
    db.execute("ALTER TABLE outbox RENAME TO outbox_v1")
    db.execute("ALTER TABLE history RENAME TO history_v1")
    db.execute("DROP INDEX IF EXISTS history_by_time")
    # executescript would commit: one statement at a time (comments dropped first: they may hold a ';')
    for statement in re.sub(r"--[^\n]*", "", schema).split(";"):
        if statement.strip():
            db.execute(statement)


def _move_readings(db: sqlite3.Connection, keys: dict[int, AESGCM]) -> None:
    """Copy the waiting readings in their order, re-sealed (padded, new associated data); the seq is the
    id's own when it can be, else the next one (noted in `renumbered`)."""
    high = 0
    for record_id, key_version, sealed, created in db.execute(
            "SELECT id, key_version, sealed, created FROM outbox_v1 ORDER BY seq").fetchall():
        own = seq_of(str(record_id))
        seq = own if own is not None and own > high else high + 1
        if seq != own:
            db.execute("INSERT INTO renumbered VALUES (?, ?)", (record_id, seq))
        key, blob = keys.get(int(key_version)), bytes(sealed)
        try:
            if key is None:
                raise InvalidTag
            plain = unseal_v1(key, blob, outbox_v1_aad(str(record_id), int(key_version)))
            sealed = seal(key, plain, outbox_aad(str(record_id), int(key_version)))
        except InvalidTag:
            # Kept as it was: it fails authentication when sent and goes to quarantine, as it would have.
            pass
        db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)", (seq, record_id, key_version, sealed, created))
        high = seq


def _move_history(db: sqlite3.Connection, keys: dict[int, AESGCM], tag_key: bytes) -> None:
    """Copy the authentic history entries, re-sealed under their kind tag; one that does not open was
    left out of every trend already and stays out."""
    for record_id, effective, key_version, sealed in db.execute(
            "SELECT id, effective, key_version, sealed FROM history_v1").fetchall():
        key, blob = keys.get(int(key_version)), bytes(sealed)
        try:
            if key is None:
                raise InvalidTag
            entry = unseal_v1(key, blob, history_v1_aad(str(record_id), int(key_version)))
        except InvalidTag:
            continue  # it was left out of every trend already; it stays out
        kind = kind_tag(tag_key, str(json.loads(entry)["kind"]))
        seq = seq_of(str(record_id)) or 0
        kept = seal(key, entry, history_aad(str(record_id), kind, float(effective), seq, int(key_version)))
        db.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, NULL, ?, ?)",
                   (kind, float(effective), seq, record_id, key_version, kept))
