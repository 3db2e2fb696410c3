"""Outbox benchmark: sealed inserts against plain SQLite inserts of the same bytes, in the same run.

    .venv/bin/python bench/outbox.py [--sizes 1000,100000] [--sample 1000]

Prints: bytes written to the card per reading on the pipeline's real path (GATT bytes -> zoning ->
outbox row + history entry + dedup tag, one commit each) against a plain append-only SQLite insert of
the same wire reading with the same durability (WAL, synchronous=FULL), and against the version 1
layout (AUTOINCREMENT, unique id index, unkeyed dedup table, history with two indexes) replayed in
SQL; inserts/s (sealed, plain, ratio), bytes written per insert (/proc/self/io), drain rate (read +
unseal + ack), and the cost per insert as the store grows (must stay flat).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# Run as a script, bench/ would come first on the path and bench/zoning.py would hide the zoning package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers import Delivery, uuids
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, uuid7
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox
from hardware_sims.encoding import date_time, sfloat
from zoning import standard_plan

OSLO = ZoneInfo("Europe/Oslo")
CUFF = "F0:5E:1A:00:00:01"

PAYLOAD = b'{"type":"blood_pressure","components":{"systolic":{"value":128.0,"unit":"mm[Hg]"}}' + b" " * 226  # ~310 B


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


class PlainStore:
    """The baseline: the same table shape and durability settings, no sealing."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA journal_size_limit=4194304")
        self.db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, "
                        "key_version INTEGER, sealed BLOB, created REAL)")

    def put(self, record_id: str, payload: bytes) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO outbox (id, key_version, sealed, created) VALUES (?, 1, ?, ?)",
                        (record_id, payload, time.time()))
        self.db.execute("COMMIT")


def _durable(db: sqlite3.Connection) -> sqlite3.Connection:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA journal_size_limit=4194304")
    return db


def cuff_value(i: int, start: datetime) -> bytes:
    """A time-stamped Blood Pressure Measurement, a different minute (so a different measurement) each."""
    when = (start + timedelta(minutes=i)).astimezone(OSLO).replace(tzinfo=None)
    return (bytes([0b0000_0110]) + sfloat(110 + i % 60) + sfloat(70 + i % 20) + b"\xff\x07" + date_time(when)
            + sfloat(60 + i % 30))


def pipeline_path(folder: Path, count: int) -> tuple[float, int]:
    """(bytes written per reading, wire payload size) through Pipeline.deliver with a real outbox."""
    outbox = SealedOutbox(folder / "pipeline.sqlite3", os.urandom(32))
    device = DeviceSection(address=CUFF, kind=MeasurementKind.BLOOD_PRESSURE, serial="SIMBPM0001")
    plan = standard_plan(load_profile("standard-blood-pressure"), load_advice(), date(2026, 1, 1))
    start = datetime.now(UTC) - timedelta(days=30)
    pipeline = Pipeline(patient="p-bench", devices={CUFF: device}, plan=plan, outbox=outbox, zone=OSLO,
                        clock_tolerance=timedelta(minutes=5))

    async def feed(first: int, n: int) -> None:
        for i in range(first, first + n):
            delivered = await pipeline.deliver(CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, cuff_value(i, start))
            assert delivered is Delivery.STORED, delivered

    warm = max(20, count // 5)
    asyncio.run(feed(0, warm))  # past the first pages of each b-tree
    before = written_bytes()
    asyncio.run(feed(warm, count))
    per = (written_bytes() - before) / count
    size = len(outbox.pending(0, 1)[0].payload)
    outbox.close()
    return per, size


def plain_append(folder: Path, count: int, size: int) -> float:
    """The baseline: one append-only table, one insert per commit, same durability, same bytes."""
    db = _durable(sqlite3.connect(folder / "append.sqlite3", isolation_level=None))
    db.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    payload = os.urandom(size + 28)  # the wire reading plus nonce and tag, as the outbox stores it

    def put() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO log (body) VALUES (?)", (payload,))
        db.execute("COMMIT")

    for _ in range(max(20, count // 5)):
        put()
    before = written_bytes()
    for _ in range(count):
        put()
    per = (written_bytes() - before) / count
    db.close()
    return per


def version1_layout(folder: Path, count: int, size: int) -> float:
    """The version 1 outbox's writes per reading, replayed in SQL (same row sizes, same commit)."""
    db = _durable(sqlite3.connect(folder / "v1.sqlite3", isolation_level=None))
    db.executescript("""
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                             key_version INTEGER NOT NULL, sealed BLOB NOT NULL, created REAL NOT NULL);
        CREATE TABLE seen (dedup TEXT PRIMARY KEY, id TEXT NOT NULL, first_seen REAL NOT NULL);
        CREATE TABLE history (id TEXT PRIMARY KEY, effective REAL NOT NULL, key_version INTEGER NOT NULL,
                              sealed BLOB NOT NULL);
        CREATE INDEX history_by_time ON history (effective);""")
    payload, kept = os.urandom(size + 28), os.urandom(230)

    def put(i: int) -> None:
        rid, now = str(uuid7()), time.time()
        db.execute("BEGIN IMMEDIATE")
        db.execute("SELECT id FROM seen WHERE dedup = ?", (hashlib.sha256(b"%d" % i).hexdigest(),)).fetchone()
        db.execute("INSERT INTO seen VALUES (?, ?, ?)", (hashlib.sha256(b"%d" % i).hexdigest(), rid, now))
        db.execute("INSERT INTO outbox (id, key_version, sealed, created) VALUES (?, 1, ?, ?)", (rid, payload, now))
        db.execute("INSERT INTO history VALUES (?, ?, 1, ?)", (rid, now - 60, kept))
        db.execute("COMMIT")

    for i in range(max(20, count // 5)):
        put(i)
    before = written_bytes()
    for i in range(count):
        put(count + i)
    per = (written_bytes() - before) / count
    db.close()
    return per


def timed_inserts(put: object, count: int) -> tuple[float, float]:
    """(inserts per second, bytes written per insert) for `count` inserts."""
    before_io, start = written_bytes(), time.perf_counter()
    for _ in range(count):
        put(str(uuid7()), PAYLOAD)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    return count / elapsed, (written_bytes() - before_io) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000", help="store sizes to measure insert cost at")
    parser.add_argument("--sample", type=int, default=1000, help="inserts timed at each size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        real, size = pipeline_path(folder, args.sample)
        base = plain_append(folder, args.sample, size)
        old = version1_layout(folder, args.sample, size)
        print(f"bytes written per reading ({args.sample} readings, wire reading {size} B, goal: ratio <= 2)")
        print(f"{'':34}{'B written':>10} {'ratio':>6}")
        for name, written in (("plain append-only insert", base), ("pipeline path (outbox v2)", real),
                              ("version 1 layout, same writes", old)):
            print(f"{name:<34}{written:10.0f} {written / max(base, 1):6.2f}")
        print()

        sealed = SealedOutbox(folder / "sealed.sqlite3", os.urandom(32))
        plain = PlainStore(folder / "plain.sqlite3")
        p_rate, p_bytes = timed_inserts(plain.put, args.sample)
        s_rate, s_bytes = timed_inserts(lambda i, p: sealed.put(i, p), args.sample)
        d_rate, d_bytes = timed_inserts(lambda i, p: sealed.put(i, p, dedup=i), args.sample)
        print(f"{'':22}{'inserts/s':>10} {'ratio':>6} {'B written/insert':>17} {'ratio':>6}")
        for name, rate, written in (("plain SQLite", p_rate, p_bytes), ("sealed", s_rate, s_bytes),
                                    ("sealed + dedup key", d_rate, d_bytes)):
            print(f"{name:<22}{rate:10.0f} {rate / p_rate:6.2f} {written:17.0f} {written / max(p_bytes, 1):6.2f}")

        filled = sealed.depth()
        for size in sizes:
            while filled < size:
                batch = min(5000, size - filled)
                for _ in range(batch):
                    sealed.put(str(uuid7()), PAYLOAD)
                filled += batch
            rate, per = timed_inserts(lambda i, p: sealed.put(i, p), args.sample)
            filled += args.sample
            print(f"at {size:>9,} records: {1e3 / rate:6.3f} ms per sealed insert, {per:7.0f} B written")

        start, drained, cursor = time.perf_counter(), 0, 0
        while entries := sealed.pending(cursor, 50):
            sealed.acknowledge([e.id for e in entries])
            drained += len(entries)
            cursor = entries[-1].seq
        elapsed = time.perf_counter() - start
        print(f"drain          {drained / elapsed:8.0f} readings/s "
              f"(read + unseal + ack, batches of 50; {drained:,} in all)")
        sealed.close()


if __name__ == "__main__":
    main()
