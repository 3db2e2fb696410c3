"""An outbox written by version 1 (unkeyed dedup digests, unpadded records) opens under version 2:
every reading and history entry is kept, and the digests are gone from the file."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.readings import uuid7
from gateway.storage import SealedOutbox, StoreError, load_or_create_key

V1_SCHEMA = """
CREATE TABLE data_keys (version INTEGER PRIMARY KEY, wrapped BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, key_version INTEGER NOT NULL,
                     sealed BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE seen (dedup TEXT PRIMARY KEY, id TEXT NOT NULL, first_seen REAL NOT NULL);
CREATE TABLE history (id TEXT PRIMARY KEY, effective REAL NOT NULL, key_version INTEGER NOT NULL, sealed BLOB NOT NULL);
CREATE INDEX history_by_time ON history (effective);
CREATE TABLE quarantine (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, key_version INTEGER NOT NULL,
                         sealed BLOB NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL);
"""


def seal(key: bytes, plaintext: bytes, aad: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def write_v1(path: Path, kek: bytes, count: int) -> tuple[list[str], list[str]]:
    """As version 1 wrote it: returns (ids, the unkeyed digests it kept)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    data_key = AESGCM.generate_key(bit_length=256)
    db.execute("INSERT INTO data_keys VALUES (1, ?, ?)", (seal(kek, data_key, "dho-outbox/v1|data-key|1"), time.time()))
    ids, digests = [], []
    for i in range(count):
        rid = str(uuid7())
        digest = hashlib.sha256(b"AA:BB|2a35|%d" % i).hexdigest()
        db.execute("INSERT INTO outbox (id, key_version, sealed, created) VALUES (?, 1, ?, ?)",
                   (rid, seal(data_key, b"reading %d" % i, f"dho-outbox/v1|{rid}|1"), time.time()))
        db.execute("INSERT INTO seen VALUES (?, ?, ?)", (digest, rid, time.time()))
        entry = b'{"id":"%s","kind":"spo2","values":{"spo2":"%d"}}' % (rid.encode(), 90 + i)
        db.execute("INSERT INTO history VALUES (?, ?, 1, ?)",
                   (rid, 1000.0 + i, seal(data_key, entry, f"dho-history/v1|{rid}|1")))
        ids.append(rid)
        digests.append(digest)
    db.close()
    return ids, digests


def test_a_version_1_outbox_keeps_everything_and_loses_its_digests(tmp_path: Path) -> None:
    kek = load_or_create_key(tmp_path / "outbox.key")
    ids, digests = write_v1(tmp_path / "outbox.sqlite3", kek, 20)
    with pytest.raises(StoreError, match="key file does not match"):
        SealedOutbox(tmp_path / "outbox.sqlite3", os.urandom(32))  # the wrong key migrates nothing
    store = SealedOutbox(tmp_path / "outbox.sqlite3", kek)
    assert [(e.id, e.payload) for e in store.pending(0, 100)] == [(r, b"reading %d" % i) for i, r in enumerate(ids)]
    history = store.recall("spo2", since=0.0, until=2000.0)
    assert [json.loads(h)["values"]["spo2"] for h in history] == [str(90 + i) for i in range(20)]
    assert store.acknowledge(ids[:5]) == ids[:5] and store.depth() == 15
    store.close()
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("outbox.sqlite3"))
    assert not any(d.encode() in on_disk for d in digests)
    assert SealedOutbox(tmp_path / "outbox.sqlite3", kek).depth() == 15  # opens again, no second migration
