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
    (current,) = db.execute("PRAGMA user_version").fetchone()
    if int(current) < version and "seen" in _tables(db) and not _from_v1(db, AESGCM(kek), schema):
        return  # not this key's file: SealedOutbox says so when it loads the keys; nothing is touched
    # Every statement is CREATE ... IF NOT EXISTS: a table added to the schema later appears in older files.
    db.executescript(schema)
    if int(current) < version:
        db.execute(f"PRAGMA user_version = {version}")


def _from_v1(db: sqlite3.Connection, kek: AESGCM, schema: str) -> bool:
    keys: dict[int, AESGCM] = {}
    for version, wrapped in db.execute("SELECT version, wrapped FROM data_keys"):
        try:
            keys[int(version)] = unwrap_data_key(kek, bytes(wrapped), int(version))
        except InvalidTag:
            return False
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE outbox RENAME TO outbox_v1")
        db.execute("ALTER TABLE history RENAME TO history_v1")
        db.execute("DROP INDEX IF EXISTS history_by_time")
        # executescript would commit: one statement at a time (comments dropped first: they may hold a ';')
        for statement in re.sub(r"--[^\n]*", "", schema).split(";"):
            if statement.strip():
                db.execute(statement)
        tag_key = os.urandom(32)
        db.execute("INSERT INTO tag_key VALUES (1, ?)", (wrap_tag_key(kek, tag_key),))
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
        for table in ("seen", "outbox_v1", "history_v1"):
            db.execute(f"DROP TABLE {table}")  # secure_delete: the digests are overwritten in the file
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return True
