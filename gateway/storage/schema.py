"""The outbox file's tables (schema version 2) and how a record's sequence number follows from its id.

`migrate.py` brings an older file to this schema when it is opened; what each column holds in clear,
and why, is in docs/decisions/0003-what-is-stored-in-clear.md.
"""

from __future__ import annotations

import uuid

SCHEMA_VERSION = 2

SCHEMA = """
-- Data keys, each wrapped (AES-256-GCM) by the key-encryption key from the provisioned secret.
CREATE TABLE IF NOT EXISTS data_keys (version INTEGER PRIMARY KEY, wrapped BLOB NOT NULL, created REAL NOT NULL);
-- The key of the keyed tags below, wrapped by the KEK, deleted by the wipe with the data keys.
CREATE TABLE IF NOT EXISTS tag_key (one INTEGER PRIMARY KEY CHECK (one = 1), wrapped BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    -- The first 64 bits of the UUIDv7 id (its millisecond and counter): ids and sequence numbers grow
    -- together, an ack finds its row by primary key, and no index on `id` is written per reading.
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
-- The rare id whose sequence number could not be its own (not a UUIDv7, or the clock went back).
CREATE TABLE IF NOT EXISTS renumbered (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
-- What zoning needs of earlier readings (sealed values, time, zone), kept after the ack for 90 days
-- from when it was STORED (seq), never from the time a reading claims. Clustered by (kind tag, time):
-- a kind's window is one range, and a new reading is appended at the end of its kind's range.
CREATE TABLE IF NOT EXISTS history (
    kind INTEGER NOT NULL,  -- keyed tag of the measurement kind
    effective REAL NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    dedup INTEGER,  -- keyed tag of (device, characteristic, bytes): the same measurement fetched again
    key_version INTEGER,
    kept BLOB,  -- NULL for an entry that only remembers a dedup tag
    PRIMARY KEY (kind, effective, seq)
) WITHOUT ROWID;
-- Events for up/events, sealed and acknowledged by id like readings (rare: an index is affordable).
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
-- Signed documents the box has accepted (the plan in force, the trust store), newest version wins.
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    kept REAL NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
-- A shared scale's weighing whose user the scale could not tell: sealed until the patient answers
-- "was this you?" (yes: it becomes a reading, no: it is deleted).
CREATE TABLE IF NOT EXISTS unassigned (
    id TEXT PRIMARY KEY,
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
"""


def seq_of(record_id: str) -> int | None:
    """The sequence number a UUIDv7 id carries: 48-bit millisecond, version, 12-bit counter."""
    try:
        parsed = uuid.UUID(record_id)
    except ValueError:
        return None
    return parsed.int >> 64 if parsed.version == 7 else None


def stored_at(seq: int) -> float:
    """When a record was stored (gateway clock), from its sequence number."""
    return (seq >> 16) / 1000.0
