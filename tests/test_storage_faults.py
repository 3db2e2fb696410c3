"""A damaged outbox file, file modes, history pruning and the cost of the health check."""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.readings import uuid7
from gateway.storage import SealedOutbox, load_or_create_key
from tests.support import cli, config_for

DAY = 86400.0


def open_store(folder: Path) -> SealedOutbox:
    return SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))


def fill(folder: Path, count: int) -> list[str]:
    store = open_store(folder)
    ids = [str(uuid7()) for _ in range(count)]
    for rid in ids:
        store.put(rid, os.urandom(500), remember=("blood_pressure", 1000.0, b'{"kind":"blood_pressure"}'))
    store.close()
    return ids


def corrupt_pages_of(folder: Path, table: str) -> None:
    """Overwrite the root page of `table`'s b-tree and its first leaf, as a failing SD card does."""
    path = folder / "outbox.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with path.open("r+b") as f:
        f.seek((int(root) - 1) * int(page_size))
        page = f.read(int(page_size))
        assert page[0] == 0x05  # an interior table page: its first cell points at the first leaf
        (first_cell,) = struct.unpack(">H", page[12:14])
        (leaf,) = struct.unpack(">I", page[first_cell:first_cell + 4])
        for number in (int(root), leaf):
            f.seek((number - 1) * int(page_size) + 8)  # keep the page type byte, break the cells
            f.write(os.urandom(int(page_size) - 8))


@pytest.fixture
def corrupted(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    ids = fill(tmp_path, 300)
    corrupt_pages_of(tmp_path, "outbox")
    before = sorted(p.name for p in tmp_path.iterdir())
    yield tmp_path, ids
    assert {p.name for p in tmp_path.iterdir()} >= set(before)  # nothing deleted


def test_a_malformed_outbox_is_worked_around_and_names_salvage(corrupted: tuple[Path, list[str]]) -> None:
    # Issue 19.4: damage never stops the box (it stopped `run` with exit 2 before); tests/test_storage_damage.py.
    folder, _ = corrupted
    store = open_store(folder)
    store.pending(0, 1000)  # no exception: the damaged pages are stepped over
    assert any("outbox salvage" in fault for fault in store.damage())
    store.close()


def test_status_on_a_malformed_outbox_is_a_fault_naming_salvage(corrupted: tuple[Path, list[str]]) -> None:
    folder, _ = corrupted
    done = cli("status", "--config", str(config_for(folder, 1)), timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert any(x.startswith("FAULT:") and "dho-gateway outbox salvage" in x for x in done.stdout.splitlines())


def test_salvage_copies_every_readable_record_into_a_new_outbox(corrupted: tuple[Path, list[str]]) -> None:
    folder, ids = corrupted
    config = config_for(folder, 1)
    done = cli("outbox", "salvage", "--config", str(config), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "salvaged" in done.stdout
    status = cli("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    store = open_store(folder)
    kept = [e.id for e in store.pending(0, 10_000)]
    history = store.recall("blood_pressure", since=0.0, until=2000.0, limit=10_000)
    store.close()
    assert len(history) == 300  # the history's pages were not touched: all of it is back
    # One leaf of a few records was destroyed; every other record is back, in order.
    assert 300 - 20 <= len(kept) < 300 and kept == [i for i in ids if i in set(kept)]
    assert any(p.name.startswith("outbox.sqlite3.damaged") for p in folder.iterdir())


def test_everything_in_the_data_directory_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = os.umask(0o022)
    try:
        store = open_store(data)
        store.put(str(uuid7()), b"x")
        assert {p.name for p in data.iterdir()} >= {"outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm"}
        for path in [data, *data.iterdir()]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path.name} is {mode:04o}"
        store.close()
    finally:
        os.umask(old)


def test_pruning_follows_when_readings_were_stored_not_the_time_they_claim(tmp_path: Path) -> None:
    # Issue 9.1: a record dated 2052 must not make ten real weighings "older than 90 days".
    store = open_store(tmp_path)
    now = 1_795_000_000.0
    for day in range(10):
        store.put(str(uuid7()), b"w", remember=("body_weight", now - (10 - day) * DAY, b'{"d":%d}' % day))
    store.put(str(uuid7()), b"w", remember=("body_weight", 2_608_000_000.0, b'{"d":"2052"}'))
    store.forget_stored_before(now - 90 * DAY)
    assert len(store.recall("body_weight", since=0.0, until=3e9)) == 11


def test_the_health_check_does_not_read_the_whole_outbox(tmp_path: Path) -> None:
    def steps_for(store: SealedOutbox) -> int:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0

        store._db.set_progress_handler(tick, 10)
        store.depth()
        store.oldest_pending_age_s()
        store.usage()
        store._db.set_progress_handler(None, 10)
        return counted[0]

    small = open_store(tmp_path / "small")
    for _ in range(10):
        small.put(str(uuid7()), b"x")
    large = open_store(tmp_path / "large")
    for _ in range(5000):
        large.put(str(uuid7()), b"x")
    assert steps_for(large) <= steps_for(small) + 5


async def test_a_failing_outbox_read_in_the_health_check_is_a_status_fault_not_a_crash(tmp_path: Path) -> None:
    import asyncio

    from gateway.storage import OutboxUnavailable
    from hardware_sims.home import SimulatedHome
    from tests.test_delivery_mosquitto import gateway_for

    gateway = await asyncio.to_thread(gateway_for, tmp_path, 1, SimulatedHome(interval_s=1, count=0))

    def failing_usage() -> None:
        raise OutboxUnavailable("outbox cannot be measured: disk I/O error")

    gateway.outbox.usage = failing_usage  # type: ignore[assignment,method-assign]
    gateway.health_interval_s = 0.01
    watch = asyncio.create_task(gateway._watch())
    await asyncio.sleep(0.2)
    assert not watch.done()  # still checking
    watch.cancel()
    assert gateway._status_facts().faults == ["outbox cannot be measured: disk I/O error"]
    gateway.outbox.close()
