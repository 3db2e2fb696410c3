"""Issue 19.4, "damage never stops the box": a damaged record or page of the outbox file is worked
around (the rest keeps going), `status` always shows it (a FAULT line naming `outbox salvage`, exit 1),
`run` never exits on damage it can work around, and nothing ends in a traceback.

What counts as damage that `status` must report (the randomized trials): after the bytes are changed,
the keys (`data_keys`, `tag_key`) no longer read back exactly as before, or one of the records stored
before (readings waiting, events, history entries, documents, weighings waiting) no longer reads back
through SQLite and authenticates under its key with the same plaintext, or reading raises. Damage that
changes nothing readable (an unused stretch of a page, a free page) need not be reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drivers import uuids
from drivers.measurement import MeasurementKind
from gateway.readings import uuid7
from gateway.service import Gateway, IdleDeviceSource
from gateway.service.cli import main
from gateway.settings import load_settings
from gateway.storage import OutboxUnavailable, SealedOutbox, StoreError, load_or_create_key
from gateway.storage.sealing import (
    document_aad,
    event_aad,
    history_aad,
    outbox_aad,
    unassigned_aad,
    unseal,
    unwrap_data_key,
)
from hardware_sims import encoding
from tests.support import ROOT, cli, config_for, take
from zoning import PastReading

KIND = "blood_pressure"


def outbox_of(folder: Path) -> Path:
    return folder / "outbox.sqlite3"


def open_store(folder: Path) -> SealedOutbox:
    return SealedOutbox(outbox_of(folder), load_or_create_key(folder / "outbox.key"))


def past(record_id: str, effective: float) -> bytes:
    """A history entry as the pipeline keeps it."""
    return PastReading(id=record_id, kind=MeasurementKind.BLOOD_PRESSURE, values={"systolic": 120, "diastolic": 80},
                       effective=datetime.fromtimestamp(effective, UTC), zone="green").model_dump_json().encode()


def fill(folder: Path, readings: int = 40) -> list[str]:
    """A real outbox: readings with history entries, events, a document and a weighing waiting."""
    store = open_store(folder)
    ids = [str(uuid7()) for _ in range(readings)]
    for n, rid in enumerate(ids):
        store.put(rid, os.urandom(300), dedup=f"dev|{n}", remember=(KIND, 1000.0 + n, past(rid, 1000.0 + n)))
    for n in range(5):
        store.put_event(str(uuid7()), b'{"event":%d}' % n)
    store.keep_document("test-document", 1, b"{\"document\":1}")
    store.park(str(uuid7()), b'{"weighing":1}', keep=5)
    store.close()
    checkpoint(folder)
    return ids


def checkpoint(folder: Path) -> None:
    db = sqlite3.connect(outbox_of(folder))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def page_geometry(folder: Path) -> tuple[int, int]:
    db = sqlite3.connect(outbox_of(folder))
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.close()
    return int(page_size), int(pages)


def root_page(folder: Path, table: str) -> int:
    db = sqlite3.connect(outbox_of(folder))
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    db.close()
    return int(root)


def flip_in_page(folder: Path, page: int, needle: bytes, bit: int = 0x80) -> None:
    """Flip one bit of the first byte of `needle` where it appears in page `page` of the file."""
    page_size, _ = page_geometry(folder)
    path = outbox_of(folder)
    data = bytearray(path.read_bytes())
    start = (page - 1) * page_size
    at = data.find(needle, start, start + page_size)
    assert at >= 0, "the value is not on that page"
    data[at] ^= bit
    path.write_bytes(bytes(data))


def status_lines(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["status", "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_fault_names_salvage(code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert code == 1, (out, err)
    faults = [line for line in out.splitlines() if line.startswith("FAULT:")]
    assert faults, out
    assert any("dho-gateway outbox salvage" in line for line in faults), faults


def without_web(config: Path) -> Path:
    config.write_text(config.read_text().replace("[web]\nenabled = true", "[web]\nenabled = false"))
    return config


def run_for_a_while(config: Path, seconds: float = 6.0) -> tuple[int | None, str]:
    """Start `dho-gateway run`; (its exit code if it ended by itself within `seconds`, else None, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    ended = proc.poll()
    if ended is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return ended, err


# Finding 1: one flipped bit in a clear `history.id`.

def flip_history_id(folder: Path, ids: list[str]) -> None:
    # The id is in clear in both `outbox` and `history`: flip it where the history table (a WITHOUT
    # ROWID b-tree: index pages, type 0x0A) keeps it.
    page_size, pages = page_geometry(folder)
    data = outbox_of(folder).read_bytes()
    (page,) = [n for n in range(2, pages + 1) if data[(n - 1) * page_size] == 0x0A
               and ids[7].encode() in data[(n - 1) * page_size:n * page_size]]
    flip_in_page(folder, page, ids[7].encode())


def test_a_flipped_bit_in_a_clear_history_id_is_worked_around_and_left_out(tmp_path: Path) -> None:
    ids = fill(tmp_path)
    flip_history_id(tmp_path, ids)
    store = open_store(tmp_path)  # opens
    kept = store.recall(KIND, since=0.0, until=5000.0)
    assert len(kept) == len(ids) - 1  # the damaged entry is left out, every other one is read
    assert [e.id for e in store.pending(0, 1000)] == ids  # the readings themselves are intact
    new = str(uuid7())
    store.put(new, b"red", remember=(KIND, 9000.0, past(new, 9000.0)))
    assert store.pending(0, 1000)[-1].id == new  # a new reading is stored
    assert any("outbox salvage" in f for f in store.damage())  # the running box says so
    store.close()


def test_status_shows_a_flipped_bit_in_a_clear_history_id(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    ids = fill(tmp_path)
    flip_history_id(tmp_path, ids)
    assert_fault_names_salvage(*status_lines(config_for(tmp_path, 1), capsys))


def test_run_keeps_going_with_a_flipped_bit_in_a_clear_history_id(tmp_path: Path) -> None:
    ids = fill(tmp_path)
    flip_history_id(tmp_path, ids)
    ended, err = run_for_a_while(without_web(config_for(tmp_path, 1)))
    assert ended is None, err  # still running: the damage is worked around
    assert "Traceback" not in err and "dho-gateway: error" not in err


# Finding 2: an interior page damaged.

def zero_cells(folder: Path, page: int) -> None:
    """Zero the cell content area of page `page` (page header and cell pointers kept), as a card that
    lost part of a block does: the rows' records then read back as NULLs or garbage."""
    page_size, _ = page_geometry(folder)
    path = outbox_of(folder)
    data = bytearray(path.read_bytes())
    start = (page - 1) * page_size
    content = int.from_bytes(data[start + 5:start + 7], "big") or 65536
    data[start + content:start + page_size] = bytes(page_size - content)
    path.write_bytes(bytes(data))


def test_status_on_a_damaged_key_page_is_a_fault_not_a_traceback(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path)
    zero_cells(tmp_path, root_page(tmp_path, "data_keys"))
    assert_fault_names_salvage(*status_lines(config_for(tmp_path, 1), capsys))


def test_status_on_a_damaged_interior_outbox_page_is_a_fault(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 300)  # the outbox table is more than one page: its root is an interior page
    root = root_page(tmp_path, "outbox")
    page_size, _ = page_geometry(tmp_path)
    data = outbox_of(tmp_path).read_bytes()
    assert data[(root - 1) * page_size] == 0x05  # an interior table page
    zero_cells(tmp_path, root)
    code, out, err = status_lines(config_for(tmp_path, 1), capsys)
    assert_fault_names_salvage(code, out, err)
    assert "0 reading(s) waiting" not in out and "cannot all be counted" in out  # never "nothing waits"
    assert all(line.startswith(("FAULT:", "gateway", "outbox", "quarantined", "broker", "profile", "device"))
               for line in out.splitlines())  # one line per fault, whatever SQLite's message holds


def test_a_damaged_leaf_of_waiting_readings_is_skipped_and_the_rest_drain(tmp_path: Path) -> None:
    ids = fill(tmp_path, 300)
    root = root_page(tmp_path, "outbox")
    page_size, _ = page_geometry(tmp_path)
    data = bytearray(outbox_of(tmp_path).read_bytes())
    at = (root - 1) * page_size
    first_cell = int.from_bytes(data[at + 12:at + 14], "big")
    leaf = int.from_bytes(data[at + first_cell:at + first_cell + 4], "big")
    leaf_at = (leaf - 1) * page_size
    data[leaf_at + 8:leaf_at + page_size] = random.Random(19_4).randbytes(page_size - 8)  # the first leaf: garbage
    outbox_of(tmp_path).write_bytes(bytes(data))
    store = open_store(tmp_path)
    drained = [e.id for e in store.pending(0, 1000)]
    assert 0 < len(drained) < len(ids) and drained == [i for i in ids if i in set(drained)]
    assert drained[-1] == ids[-1]  # everything after the damaged page still goes
    new = str(uuid7())
    store.put(new, b"red")
    assert store.pending(0, 1000)[-1].id == new
    assert any("outbox salvage" in f for f in store.damage())
    store.close()


def test_run_keeps_going_on_a_damaged_outbox_page_and_stops_with_one_line_when_it_cannot_open(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 300)
    config = without_web(config_for(tmp_path, 1))
    zero_cells(tmp_path, root_page(tmp_path, "outbox"))
    ended, err = run_for_a_while(config)
    assert ended is None, err
    assert "Traceback" not in err
    # The first page (the schema) destroyed: the file cannot be opened at all.
    page_size, _ = page_geometry(tmp_path)
    data = bytearray(outbox_of(tmp_path).read_bytes())
    data[:page_size] = os.urandom(page_size)
    outbox_of(tmp_path).write_bytes(bytes(data))
    done = cli("run", "--config", str(config), timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "dho-gateway: error:" in x]
    assert "dho-gateway outbox salvage" in line
    assert_fault_names_salvage(*status_lines(config, capsys))


# Finding 3: randomized page damage; `status` must report every damage that loses or hides data.

def readable(path: Path, kek: bytes) -> dict[str, object]:
    """What an independent reader finds in the file: the raw key rows, and each record that reads back
    and authenticates (by table: id -> plaintext). Raises whatever SQLite raises."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.text_factory = bytes
    try:
        keys = db.execute("SELECT version, wrapped FROM data_keys ORDER BY version").fetchall()
        tag = db.execute("SELECT wrapped FROM tag_key").fetchall()
        data_keys = {int(v): unwrap_data_key(AESGCM(kek), bytes(w), int(v)) for v, w in keys}

        def opened(rows: list[tuple[object, ...]], aad: Callable[..., bytes]) -> dict[object, bytes | None]:
            found: dict[object, bytes | None] = {}
            for key, version, sealed, *clear in rows:
                try:
                    found[key] = unseal(data_keys[int(version)], bytes(sealed), aad(*clear, int(version)))
                except (InvalidTag, KeyError, TypeError, ValueError, UnicodeDecodeError):
                    found[key] = None
            return found

        def text(value: object) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        return {
            "keys": keys, "tag": tag,
            "outbox": opened([(i, v, s, text(i)) for i, v, s in db.execute(
                "SELECT id, key_version, sealed FROM outbox")], outbox_aad),
            "events": opened([(i, v, s, text(i)) for i, v, s in db.execute(
                "SELECT id, key_version, sealed FROM events")], event_aad),
            "history": opened([(i, v, s, text(i), k, float(e), q) for k, e, q, i, v, s in db.execute(
                "SELECT kind, effective, seq, id, key_version, kept FROM history WHERE kept IS NOT NULL")],
                history_aad),
            "documents": opened([(k, v, s, text(k), n) for k, n, v, s in db.execute(
                "SELECT kind, version, key_version, sealed FROM documents")], document_aad),
            "unassigned": opened([(i, v, s, text(i)) for i, v, s in db.execute(
                "SELECT id, key_version, sealed FROM unassigned")], unassigned_aad),
        }
    finally:
        db.close()


def lost_or_hidden(path: Path, kek: bytes, before: dict[str, object]) -> bool:
    try:
        return readable(path, kek) != before
    except Exception:  # whatever an independent reader trips over is lost or hidden data
        return True


def use_as_the_box_does(folder: Path) -> None:
    """What `run` does with the file: open, drain, zone, show, store. Only the documented outcomes may
    come out: StoreError (OutboxDamaged) when it cannot open at all, OutboxUnavailable when a new reading must wait
    in memory; never another exception (a traceback)."""
    try:
        store = open_store(folder)
    except StoreError as exc:  # OutboxDamaged: the file cannot be opened at all
        assert "dho-gateway outbox salvage" in str(exc)
        return
    try:
        store.pending(0, 10_000)
        store.pending_events(0, 10_000)
        store.recall(KIND, since=0.0, until=5000.0)
        store.latest_effective(KIND)
        store.first_history_time([KIND])
        store.parked()
        store.latest_document("test-document")
        store.depth()
        store.oldest_pending_age_s()
        new = str(uuid7())
        with contextlib.suppress(OutboxUnavailable):
            store.put(new, b"red", dedup="dev|new", remember=(KIND, 9000.0, past(new, 9000.0)))
    finally:
        store.close()


def test_status_reports_every_random_page_damage_that_loses_or_hides_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    fill(base, 150)
    kek = (base / "outbox.key").read_bytes()
    before = readable(outbox_of(base), kek)
    page_size, pages = page_geometry(base)
    rng = random.Random(int(os.environ.get("DHO_DAMAGE_SEED", "194")))  # another seed: more trials
    seen = {"damaging": 0, "harmless": 0, "harmless, still a fault": 0}
    for trial in range(100):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        shutil.copy(outbox_of(base), outbox_of(folder))
        shutil.copy(base / "outbox.key", folder / "outbox.key")
        page = rng.randint(1, pages)
        length = rng.choice([1, 8, 64, 512, page_size])
        offset = rng.randrange(0, page_size - length + 1)
        data = bytearray(outbox_of(folder).read_bytes())
        at = (page - 1) * page_size + offset
        data[at:at + length] = os.urandom(length)
        outbox_of(folder).write_bytes(bytes(data))
        damaging = lost_or_hidden(outbox_of(folder), kek, before)
        code, out, err = status_lines(config_for(folder, 1), capsys)
        what = f"trial {trial}: page {page}, {length} byte(s) at {offset}"
        assert "Traceback" not in out + err, what
        assert code in (0, 1), (what, out, err)
        if damaging:
            assert code == 1 and "dho-gateway outbox salvage" in out, (what, out, err)
        seen["damaging" if damaging else "harmless, still a fault" if code else "harmless"] += 1
        outbox_of(folder).write_bytes(bytes(data))  # as damaged, whatever `status` did to it
        started = time.monotonic()
        use_as_the_box_does(folder)
        if os.environ.get("DHO_DAMAGE_TRACE"):
            print(what, f"{time.monotonic() - started:.2f} s", flush=True)
    print(seen)
    assert seen["damaging"] >= 50, seen  # the trials do damage (most land on a used page)


# The box keeps measuring, storing and showing: a red is stored and shown, and the technician's page
# (fed by the status facts) lists the damage.

BPM = "F0:5E:1A:00:00:01"


def cuff(systolic: int, diastolic: int, stamp: datetime) -> bytes:
    return (bytes([0x02]) + encoding.sfloat(systolic) + encoding.sfloat(diastolic)
            + encoding.sfloat((systolic + 2 * diastolic) // 3) + encoding.date_time(stamp))


async def test_a_red_is_stored_and_shown_with_the_history_pages_damaged_and_the_page_lists_it(
        tmp_path: Path) -> None:
    config = config_for(tmp_path, 1)
    first = Gateway(load_settings(config), IdleDeviceSource())
    for n in range(40):
        await take(first.pipeline, BPM, uuids.BLOOD_PRESSURE_MEASUREMENT,
                   cuff(120, 80, datetime(2026, 11, 1 + n // 4, 7 + n % 4)))
    first.outbox.close()
    checkpoint(tmp_path)
    # The last leaf of the history b-tree, where the next entry goes: its cells zeroed.
    page_size, _ = page_geometry(tmp_path)
    root = root_page(tmp_path, "history")
    data = outbox_of(tmp_path).read_bytes()
    at = (root - 1) * page_size
    assert data[at] == 0x02  # an interior index page: its right-most child is the last leaf
    zero_cells(tmp_path, int.from_bytes(data[at + 8:at + 12], "big"))

    again = Gateway(load_settings(config), IdleDeviceSource())  # starts
    shown: list[tuple[str, str]] = []
    again.pipeline.readings.subscribe(lambda reading, assessment: shown.append((str(reading.id), assessment.zone)))
    red = await take(again.pipeline, BPM, uuids.BLOOD_PRESSURE_MEASUREMENT, cuff(85, 55, datetime(2026, 11, 12, 7)))
    assert red is not None and shown == [(str(red.id), "red")]  # stored, then shown
    assert again.outbox.pending(0, 1000)[-1].id == str(red.id)
    assert again.pipeline.storage_fault is None
    faults = again._status_facts().faults
    assert any("dho-gateway outbox salvage" in f for f in faults), faults
    assert any("dho-gateway outbox salvage" in f for f in (await asyncio.to_thread(again.service_facts)).faults)
    again.outbox.close()


def test_kit_check_fails_its_outbox_line_on_damage_naming_salvage(tmp_path: Path) -> None:
    from gateway.kit.check import check_outbox

    ids = fill(tmp_path)
    settings = load_settings(config_for(tmp_path, 1))
    kek = (tmp_path / "outbox.key").read_bytes()
    flip_history_id(tmp_path, ids)
    line = check_outbox(settings, kek)
    assert not line.ok and "dho-gateway outbox salvage" in line.detail
    page_size, _ = page_geometry(tmp_path)
    data = bytearray(outbox_of(tmp_path).read_bytes())
    data[:page_size] = os.urandom(page_size)  # cannot be opened at all: a FAIL line, not an exception
    outbox_of(tmp_path).write_bytes(bytes(data))
    line = check_outbox(settings, kek)
    assert not line.ok and "dho-gateway outbox salvage" in line.detail


def test_after_salvage_status_is_clean_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = fill(tmp_path)
    flip_history_id(tmp_path, ids)
    config = config_for(tmp_path, 1)
    assert main(["outbox", "salvage", "--config", str(config)]) == 0
    code, out, err = status_lines(config, capsys)
    assert code == 0 and "FAULT" not in out, (out, err)
    store = open_store(tmp_path)
    assert [e.id for e in store.pending(0, 1000)] == ids  # every reading waiting is still there
    assert len(store.recall(KIND, since=0.0, until=5000.0)) == len(ids) - 1  # the damaged entry is not
    store.close()
