"""Salvage: copy every readable record of a damaged outbox file into a new outbox.

SQLite cannot read past a damaged b-tree page, so this reads the file's pages itself (the main file
and the WAL's frames): every leaf cell that parses as a row of the outbox's tables is a candidate,
and only a candidate that authenticates under its key (AES-GCM with its id and key version as
associated data) is copied. A page of garbage therefore yields nothing, and a record is never altered.
The damaged files are renamed, never deleted, so a specialist can still look at them.

An older copy of a page (in the WAL) can hold a reading that was acknowledged since: it is sent again,
and the central service acknowledges a reading id it already has without storing it twice. History
needs the tag key (its kind tags): if that page is lost, the history is left out and the new outbox
starts a new one (readings waiting and events are still copied).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.storage.outbox import SealedOutbox
from gateway.storage.schema import seq_of
from gateway.storage.sealing import (
    event_aad,
    history_aad,
    outbox_aad,
    unseal,
    unwrap_data_key,
    unwrap_tag_key,
)

Value = int | float | str | bytes | None

_TABLE_LEAF, _INDEX_LEAF, _INDEX_INTERIOR = 0x0D, 0x0A, 0x02


class Salvaged(NamedTuple):
    """What salvage copied into the new outbox, and where the damaged files were moved."""

    readings: int
    events: int
    history: int
    moved_to: Path


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = 0
    for n in range(9):
        byte = buf[i + n]
        if n == 8:
            return (value << 8) | byte, i + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + n + 1
    raise IndexError


def _record(payload: bytes) -> list[Value]:
    header_len, i = _varint(payload, 0)
    types = []
    while i < header_len:
        t, i = _varint(payload, i)
        types.append(t)
    pos, values = header_len, list[Value]()
    for t in types:
        if t == 0:
            values.append(None)
        elif 1 <= t <= 6:
            size = (1, 2, 3, 4, 6, 8)[t - 1]
            values.append(int.from_bytes(payload[pos:pos + size], "big", signed=True))
            pos += size
        elif t == 7:
            values.append(struct.unpack(">d", payload[pos:pos + 8])[0])
            pos += 8
        elif t in (8, 9):
            values.append(t - 8)
        elif t >= 12:
            size = (t - 12) // 2
            chunk = payload[pos:pos + size]
            if len(chunk) != size:
                raise IndexError
            values.append(chunk.decode() if t % 2 else bytes(chunk))
            pos += size
        else:
            raise ValueError("reserved serial type")
    return values


def _cells(page: bytes, header_at: int) -> Iterator[tuple[int | None, list[Value]]]:
    """(rowid or None, values) of every cell that holds a row: table leaves, and index pages, whose
    interior pages hold entries too (the history table is a WITHOUT ROWID b-tree). Overflowing cells
    are skipped (outbox rows are far smaller than a page)."""
    kind = page[header_at]
    if kind not in (_TABLE_LEAF, _INDEX_LEAF, _INDEX_INTERIOR):
        return
    (count,) = struct.unpack(">H", page[header_at + 3:header_at + 5])
    header_size = 12 if kind == _INDEX_INTERIOR else 8
    usable = len(page)
    for n in range(count):
        try:
            at_pointer = header_at + header_size + 2 * n
            (at,) = struct.unpack(">H", page[at_pointer:at_pointer + 2])
            if kind == _INDEX_INTERIOR:
                at += 4  # the left child's page number
            size, i = _varint(page, at)
            rowid = None
            if kind == _TABLE_LEAF:
                rowid, i = _varint(page, i)
            if size > usable - 35 or i + size > usable:
                continue
            yield rowid, _record(page[i:i + size])
        except (IndexError, ValueError, UnicodeDecodeError, struct.error):
            continue


def _pages(path: Path) -> Iterator[tuple[bytes, int]]:
    """Every page image of the database file and its WAL: (page, offset of the b-tree header)."""
    data = path.read_bytes() if path.exists() else b""
    page_size = 4096
    if len(data) >= 100 and data.startswith(b"SQLite format 3\x00"):
        (raw,) = struct.unpack(">H", data[16:18])
        page_size = 65536 if raw == 1 else raw
    for n in range(len(data) // page_size):
        yield data[n * page_size:(n + 1) * page_size], 100 if n == 0 else 0
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        log = wal.read_bytes()
        if len(log) >= 32:
            (wal_page,) = struct.unpack(">I", log[8:12])
            frame = 24 + wal_page
            for at in range(32, len(log) - frame + 1, frame):
                (number,) = struct.unpack(">I", log[at:at + 4])
                yield log[at + 24:at + frame], 100 if number == 1 else 0


def _rows(path: Path) -> list[tuple[int | None, list[Value]]]:
    return [cell for page, header_at in _pages(path) for cell in _cells(page, header_at)]


def salvage(path: Path, kek: bytes) -> Salvaged:
    """Read every authentic record of the outbox at `path`, move the damaged files aside, and write
    a new outbox at `path` holding them. Raises OSError (nothing moved) if the file cannot be read."""
    rows = _rows(path)
    found = _Found(*_keys(rows, AESGCM(kek)))
    for rowid, values in rows:
        if rowid is not None and len(values) == 5 and isinstance(values[1], str):
            found.waiting(values)
        elif rowid is None and len(values) == 7 and found.tag_key is not None:
            found.history_entry(values)
    moved_to = _move_aside(path)
    _write(path, kek, found)
    return Salvaged(len(found.readings), len(found.events), len(found.history), moved_to)


def _keys(rows: list[tuple[int | None, list[Value]]], wrapper: AESGCM) -> tuple[dict[int, AESGCM], bytes | None]:
    """The data keys (by version) and the tag key that the KEK opens among the rows."""
    keys: dict[int, AESGCM] = {}
    tag_key: bytes | None = None
    for rowid, values in rows:
        if rowid is not None and len(values) == 3 and isinstance(values[1], bytes):
            with contextlib.suppress(InvalidTag, ValueError):
                keys[rowid] = unwrap_data_key(wrapper, values[1], rowid)
        elif rowid == 1 and len(values) == 2 and isinstance(values[1], bytes):
            with contextlib.suppress(InvalidTag, ValueError):
                tag_key = unwrap_tag_key(wrapper, values[1])
    return keys, tag_key


class _Found:
    """The authentic records found so far; the first copy of a record wins (copies are equal: each
    authenticates under the same id)."""

    def __init__(self, keys: dict[int, AESGCM], tag_key: bytes | None) -> None:
        self.keys = keys
        self.tag_key = tag_key
        self.readings: dict[str, bytes] = {}
        self.events: dict[str, bytes] = {}
        self.history: dict[tuple[int, str], tuple[int, float, int | None, bytes | None]] = {}

    def opened(self, key_version: Value, sealed: Value, aad: bytes) -> bytes | None:
        """The plaintext if `sealed` authenticates under its key and `aad`, else None."""
        key = self.keys.get(key_version) if isinstance(key_version, int) else None
        if key is None or not isinstance(sealed, bytes):
            return None
        try:
            return unseal(key, sealed, aad)
        except (InvalidTag, ValueError):
            return None

    def waiting(self, values: list[Value]) -> None:
        """A row shaped like one of `outbox` or `events` (seq, id, key version, sealed, created)."""
        record_id, key_version, sealed = values[1], values[2], values[3]
        if isinstance(record_id, str) and isinstance(key_version, int):
            if (plain := self.opened(key_version, sealed, outbox_aad(record_id, key_version))) is not None:
                self.readings.setdefault(record_id, plain)
            elif (plain := self.opened(key_version, sealed, event_aad(record_id, key_version))) is not None:
                self.events.setdefault(record_id, plain)

    def history_entry(self, values: list[Value]) -> None:
        """A row shaped like one of `history` (kind, effective, seq, id, dedup, key version, kept)."""
        kind, stored_effective, seq, history_id, dedup, key_version, kept = values
        # SQLite writes a whole-number REAL as an integer in the record: read it back as a REAL.
        if not (isinstance(kind, int) and isinstance(stored_effective, int | float) and isinstance(seq, int)
                and isinstance(history_id, str)):
            return
        effective = float(stored_effective)
        entry = None
        if isinstance(key_version, int):
            entry = self.opened(key_version, kept, history_aad(history_id, kind, effective, seq, key_version))
            if entry is None:
                return
        self.history.setdefault((seq, history_id), (kind, effective, dedup if isinstance(dedup, int) else None, entry))


def _move_aside(path: Path) -> Path:
    """Rename the damaged file and its -wal and -shm (never delete them); returns the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved_to = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.name + suffix)
        if old.exists():
            old.rename(moved_to.with_name(moved_to.name + suffix))
    return moved_to


def _write(path: Path, kek: bytes, found: _Found) -> None:
    """A new outbox at `path` with what was found (the old tag key, so history keeps its tags)."""
    store = SealedOutbox(path, kek)
    try:
        if found.tag_key is not None:
            store.adopt_tag_key(found.tag_key)
        for record_id in sorted(found.readings, key=lambda r: (seq_of(r) or 0, r)):
            store.put(record_id, found.readings[record_id])
        for event_id, payload in found.events.items():
            store.put_event(event_id, payload)
        store.restore_history([(seq, record_id, *rest) for (seq, record_id), rest in sorted(found.history.items())])
    finally:
        store.close()
