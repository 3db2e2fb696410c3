"""Outbox benchmark: sealed inserts against plain SQLite inserts of the same bytes, in the same run.

    .venv/bin/python bench/outbox.py [--sizes 1000,100000] [--sample 1000]

Prints: inserts/s (sealed, plain, ratio), bytes written to disk per insert (/proc/self/io), drain
rate (read + unseal + ack), and the cost per insert as the store grows (must stay flat).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from gateway.storage import SealedOutbox

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


def timed_inserts(put: object, count: int) -> tuple[float, float]:
    """(inserts per second, bytes written per insert) for `count` inserts."""
    before_io, start = written_bytes(), time.perf_counter()
    for _ in range(count):
        put(str(uuid.uuid4()), PAYLOAD)  # type: ignore[operator]
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
                    sealed.put(str(uuid.uuid4()), PAYLOAD)
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
