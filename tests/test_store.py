"""The sealed outbox on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.readings import uuid7
from gateway.storage import KeyFileError, OutboxUnavailable, SealedOutbox, StoreError, load_or_create_key

SECRET = b'{"patient":"p-42","systolic":171}'


def open_store(tmp_path: Path) -> SealedOutbox:
    return SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))


def test_key_file_is_created_private(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "k")
    assert len(key) == 32
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(tmp_path / "k") == key


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_key(tmp_path / "k")


def test_nothing_readable_on_disk(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.put(str(uuid7()), SECRET)
    store.close()
    for f in tmp_path.iterdir():
        assert b"p-42" not in f.read_bytes() and b"systolic" not in f.read_bytes()


def test_round_trip_in_order_and_ack_deletes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ids = [str(uuid7()) for _ in range(5)]
    for i, rid in enumerate(ids):
        store.put(rid, b"%d" % i)
    entries = store.pending(0, 10)
    assert [e.id for e in entries] == ids and [e.payload for e in entries] == [b"0", b"1", b"2", b"3", b"4"]
    assert store.acknowledge([ids[0], ids[1], "not-there"]) == ids[:2]
    assert store.depth() == 3


def test_sequence_numbers_are_never_reused(tmp_path: Path) -> None:
    # The sync loop sends "everything after seq N": a reused number would never be sent.
    store = open_store(tmp_path)
    first = str(uuid7())
    store.put(first, b"a")
    (seq,) = [e.seq for e in store.pending(0, 1)]
    store.acknowledge([first])
    store.put(str(uuid7()), b"b")
    assert [e.payload for e in store.pending(seq, 10)] == [b"b"]


def test_same_measurement_keeps_its_first_id(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first = store.put(str(uuid7()), b"x", dedup="k1")
    again = store.put(str(uuid7()), b"x", dedup="k1")
    assert first.new and not again.new and again.id == first.id
    store.acknowledge([first.id])
    assert not store.put(str(uuid7()), b"x", dedup="k1").new  # even after delivery
    assert store.depth() == 0


def test_wrong_key_is_a_clear_error_and_deletes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.put(str(uuid7()), SECRET)
    store.close()
    with pytest.raises(StoreError, match="key file does not match"):
        SealedOutbox(tmp_path / "outbox.sqlite3", os.urandom(32))
    assert open_store(tmp_path).depth() == 1


def test_tampered_record_is_quarantined_and_the_rest_still_go(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ids = [str(uuid7()) for _ in range(3)]
    for rid in ids:
        store.put(rid, SECRET)
    store.close()
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    (sealed,) = db.execute("SELECT sealed FROM outbox WHERE id = ?", (ids[1],)).fetchone()
    flipped = bytes([sealed[0]]) + bytes([sealed[1] ^ 0x01]) + sealed[2:]
    db.execute("UPDATE outbox SET sealed = ? WHERE id = ?", (flipped, ids[1]))
    db.commit()
    db.close()
    store = open_store(tmp_path)
    assert [e.id for e in store.pending(0, 10)] == [ids[0], ids[2]]
    assert store.quarantined() == 1


def test_records_cannot_be_swapped_between_ids(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    a, b = str(uuid7()), str(uuid7())
    store.put(a, b"A")
    store.put(b, b"B")
    store.close()
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    db.execute("UPDATE outbox SET id = CASE id WHEN ? THEN ? ELSE ? END", (a, b + "x", a + "x"))
    db.commit()
    db.close()
    assert open_store(tmp_path).pending(0, 10) == []


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_the_size_bound_refuses_new_readings_like_a_full_disk_and_acks_make_room(tmp_path: Path) -> None:
    store = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"),
                         max_bytes=128 * 1024)
    payload = os.urandom(600)  # about one wire reading
    stored: list[str] = []
    with pytest.raises(OutboxUnavailable, match="full"):
        for _ in range(10_000):
            rid = str(uuid7())
            store.put(rid, payload)
            stored.append(rid)
    assert 50 < len(stored) < 200
    assert store.usage().percent >= 90 and store.usage().limit_bytes == 128 * 1024
    assert [e.id for e in store.pending(0, 1000)] == stored  # everything taken is still there
    store.acknowledge(stored[:50])  # deleting works at the bound, and frees room
    store.put(str(uuid7()), payload)
    assert store.depth() == len(stored) - 50 + 1
    assert (tmp_path / "outbox.sqlite3").stat().st_size <= 128 * 1024


def test_a_bound_below_the_present_size_deletes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(300):
        store.put(str(uuid7()), os.urandom(600))
    store.close()
    store = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"), max_bytes=8192)
    assert store.depth() == 300 and len(store.pending(0, 1000)) == 300
    with pytest.raises(OutboxUnavailable):
        store.put(str(uuid7()), os.urandom(600))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB file system (tmpfs), so the kernel itself answers ENOSPC."""
    mount = tmp_path / "card"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_refuses_new_readings_keeps_the_stored_ones_and_recovers(small_disk: Path) -> None:
    store = SealedOutbox(small_disk / "outbox.sqlite3", load_or_create_key(small_disk / "outbox.key"))
    stored: list[str] = []
    with pytest.raises(OutboxUnavailable, match="full"):
        for _ in range(100_000):
            rid = str(uuid7())
            store.put(rid, os.urandom(600))
            stored.append(rid)
    assert len(stored) >= 20  # few: the WAL (checkpointed every 1,000 pages) takes most of 512 KiB
    assert [e.id for e in store.pending(0, 10_000)] == stored  # everything taken is readable
    store.close()
    store = SealedOutbox(small_disk / "outbox.sqlite3", load_or_create_key(small_disk / "outbox.key"))
    assert store.depth() == len(stored)  # and it opens again on the full disk
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)  # space returns
    store.put(str(uuid7()), os.urandom(600))
    assert store.depth() == len(stored) + 1
    store.close()


def test_the_first_kept_reading_time_is_known_without_opening_any_record(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    kinds = ["spo2", "body_weight"]
    assert store.first_history_time(kinds) is None
    store.put(str(uuid7()), b"later", remember=("spo2", 2000.0, b"{}"))
    store.put(str(uuid7()), b"earlier", remember=("body_weight", 1000.0, b"{}"))
    store.put(str(uuid7()), b"other", remember=("glucose", 500.0, b"{}"))
    assert store.first_history_time(kinds) == 1000.0


def test_an_id_from_a_clock_that_went_back_is_sent_after_and_acked_like_any_other(tmp_path: Path) -> None:
    # The sequence number is the UUIDv7 id's time; an older id (the box's clock was set back) or an id
    # that is no UUIDv7 at all still goes after everything stored before it, and its ack finds it.
    store = open_store(tmp_path)
    newer, older = str(uuid7()), "01000000-0000-7000-8000-000000000001"
    store.put(newer, b"1")
    (first,) = store.pending(0, 10)
    store.put(older, b"2")
    store.put("not-a-uuid", b"3")
    assert [e.payload for e in store.pending(first.seq, 10)] == [b"2", b"3"]
    store.close()
    store = open_store(tmp_path)
    assert store.acknowledge([older, "not-a-uuid", newer]) == [older, "not-a-uuid", newer]
    assert store.depth() == 0


@pytest.mark.parametrize("first", [b"\x00", b"\x01", b"\x02", b"\x80", b"{"])
def test_any_payload_comes_back_as_it_was_put_whatever_its_first_byte(tmp_path: Path, first: bytes) -> None:
    """Packing marks every value (compressed or not): a payload that happens to start with the marker of a
    compressed one is not taken for one (1 in 256 random payloads was quarantined before)."""
    store = open_store(tmp_path)
    for payload in (first + os.urandom(600), first + b"x" * 600):
        record_id = str(uuid7())
        store.put(record_id, payload)
        assert [e.payload for e in store.pending(0, 1000) if e.id == record_id] == [payload]
    store.close()
