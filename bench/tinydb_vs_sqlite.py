"""tinydb against SQLite for the outbox workload, on this machine (docs/decisions/0001-outbox-storage.md).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/tinydb_vs_sqlite.py [--kills 200]

Prints, for plain SQLite (the outbox's table shape and durability settings, no sealing) and tinydb
(JSONStorage, the default): the cost of one insert as the store grows to 100k records, the bytes
written to disk per insert (/proc/self/io), and how each survives kill -9 while readings are
inserted and acknowledged (deleted): trials where the store would not open, and committed readings
missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tinydb import TinyDB

sys.path.insert(0, str(Path(__file__).parent.parent))

from bench.outbox import PAYLOAD, PlainStore, written_bytes

DOC = {"payload": PAYLOAD.decode()}


def timed(put: Callable[[str], None], count: int) -> tuple[float, float]:
    """(ms per insert, bytes written per insert)."""
    before, start = written_bytes(), time.perf_counter()
    for _ in range(count):
        put(str(uuid.uuid4()))
    return (time.perf_counter() - start) * 1e3 / count, (written_bytes() - before) / count


def growth(folder: Path, sizes: list[int]) -> None:
    plain = PlainStore(folder / "plain.sqlite3")
    tiny = TinyDB(folder / "tiny.json")
    filled = 0
    print(f"{'records':>9} | {'SQLite ms/insert':>16} {'B written':>10} | {'tinydb ms/insert':>16} {'B written':>11}"
          f" | {'ratio (time)':>12}")
    for size in sizes:
        if size > filled:  # fill fast, in one transaction / one write each; only the timed inserts count
            rows = [(str(uuid.uuid4()), PAYLOAD, time.time()) for _ in range(size - filled)]
            plain.db.execute("BEGIN")
            plain.db.executemany("INSERT INTO outbox (id, key_version, sealed, created) VALUES (?, 1, ?, ?)", rows)
            plain.db.execute("COMMIT")
            tiny.insert_multiple({"id": r[0], **DOC} for r in rows)
            plain.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the bulk fill's checkpoint is not an insert's cost
            filled = size
        sample = max(5, min(500, 200_000 // max(size, 1)))  # tinydb rewrites the whole file per insert
        s_ms, s_bytes = timed(lambda rid: plain.put(rid, PAYLOAD), 500)
        t_ms, t_bytes = timed(lambda rid: tiny.insert({"id": rid, **DOC}) and None, sample)
        filled += sample + 500
        print(f"{size:>9,} | {s_ms:16.3f} {s_bytes:10.0f} | {t_ms:16.3f} {t_bytes:11.0f} | {t_ms / s_ms:12.1f}")
    tiny.close()


TINY_WRITER = """
import sys, uuid
from tinydb import TinyDB, Query
db = TinyDB(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    rid = str(uuid.uuid4())
    db.insert({"id": rid, "payload": "x" * 300})
    print("put", rid, flush=True)
    n += 1
    if n % 10 == 0:
        oldest = [d["id"] for d in db.all()[:5]]
        print("acking", *oldest, flush=True)
        db.remove(Query().id.one_of(oldest))
"""


# The same writer, killed exactly between tinydb's write and its truncate of a shrinking file (an
# acknowledgement deletes readings): the moment a power cut or kill has a few milliseconds to land in.
AIMED_WRITER = """
import os, signal, sys
from tinydb import TinyDB, Query
db = TinyDB(sys.argv[1])
for i in range(50):
    db.insert({"id": str(i), "payload": "x" * 300})
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
db.remove(Query().id.one_of(["0", "1", "2", "3", "4"]))
"""


def tinydb_aimed_kills(folder: Path, trials: int) -> int:
    """Trials after which the file no longer opens."""
    broken = 0
    for trial in range(trials):
        path = folder / f"aimed-{trial}.json"
        subprocess.run([sys.executable, "-c", AIMED_WRITER, str(path)], check=False)
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError:
            broken += 1
    return broken


def tinydb_kills(folder: Path, trials: int, seed: int) -> tuple[int, int, int]:
    """(trials run, trials after which the file would not open, committed readings missing)."""
    rng = random.Random(seed)
    path = folder / "kill.json"
    taken: set[str] = set()
    acking: set[str] = set()
    broken = missing = 0
    for trial in range(trials):
        writer = subprocess.Popen([sys.executable, "-c", TINY_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        if writer.stdout.readline().strip() != "ready":
            writer.kill()
            writer.wait()
            broken += 1
            return trial, broken, missing
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        for line in writer.stdout:
            what, *ids = line.split()
            (taken if what == "put" else acking).update(ids)
        try:
            stored = {d["id"] for d in json.loads(path.read_text())["_default"].values()}
        except (json.JSONDecodeError, KeyError):
            broken += 1  # every reading in the file is lost; start a new file to go on counting
            path.unlink()
            taken.clear()
            acking.clear()
            continue
        missing += len(taken - acking - stored)
        taken &= stored
    return trials, broken, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,1000,10000,100000")
    parser.add_argument("--kills", type=int, default=200, help="kill -9 trials of each store")
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        growth(Path(tmp), [int(s) for s in args.sizes.split(",")])
    print(f"\nkill -9 while inserting and acknowledging, {args.kills} trials each:")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        trials, broken, missing = tinydb_kills(Path(tmp), args.kills, args.seed)
        print(f"  tinydb:       {broken} of {trials} kills left a file that does not open "
              f"(all its readings lost); {missing} committed reading(s) missing otherwise")
        aimed = max(1, args.kills // 10)
        print(f"  tinydb, killed between its write and truncate: {tinydb_aimed_kills(Path(tmp), aimed)} of {aimed} "
              "files do not open")
    from bench.kill_trials import run_trials

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        report = run_trials(Path(tmp), args.kills, args.seed)
        print(f"  sealed SQLite: {len(report.open_failures)} of {report.trials} kills left a store that does not "
              f"open; {len(report.missing)} committed reading(s) missing")


if __name__ == "__main__":
    main()
