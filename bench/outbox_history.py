"""Start-up, memory and the health check with a large stored history (issue 10.5), against an empty outbox
in the same run.

    .venv/bin/python bench/outbox_history.py [--readings 1000000]

Fills an outbox with N readings stored over the last 90 days (five kinds; each both waiting for the
central service and kept as history: the worst case, a kit offline for the whole period), then starts
`dho-gateway run` on it and on an empty outbox (broker unreachable, simulated devices) and prints for
each: time to the "started" log line, peak RSS (VmHWM) a few seconds after, the health check's outbox
calls (depth, oldest, usage) and one reading's history window query. Goals at 1M readings: RSS < 60 MiB,
and less than 1 s of start-up added to an empty outbox's (which is Python importing the gateway).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.measurement import MeasurementKind
from gateway.storage import SealedOutbox, load_or_create_key
from gateway.storage.sealing import history_aad, outbox_aad

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["blood_pressure", "spo2", "body_weight", "body_temperature", "glucose"]
WIRE = b'{"id":"%s","patient":"p-7f3a9c","type":"blood_pressure",' + b'"x":"' + b"0" * 780 + b'"}'
PAST = b'{"id":"%s","kind":"%s","values":{"systolic":"128","diastolic":"82"},"effective":"%s","zone":"green"}'


def uuid7_at(ms: int, counter: int) -> str:
    value = (ms << 80) | (0x7 << 76) | ((counter & 0xFFF) << 64) | (0b10 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def fill(folder: Path, count: int) -> None:
    """Write `count` sealed readings and history entries in large transactions (a bench shortcut:
    the rows are exactly what `put` writes, without one fsync per reading)."""
    store = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
    db = store._db
    db.execute("PRAGMA synchronous=OFF")
    now_ms = int(time.time() * 1000)
    first_ms = now_ms - 90 * 86400 * 1000
    step = max(1, (now_ms - first_ms - 60_000) // max(count, 1))
    tags = {kind: store.kind_tag(kind) for kind in KINDS}
    batch = 20_000
    for start in range(0, count, batch):
        outbox_rows, history_rows = [], []
        for i in range(start, min(count, start + batch)):
            ms = first_ms + i * step
            record_id, kind = uuid7_at(ms, i), KINDS[i % len(KINDS)]
            seq = uuid.UUID(record_id).int >> 64
            effective = ms / 1000 - 30
            version, sealed = store._keyring.seal(WIRE % record_id.encode(), lambda v, r=record_id: outbox_aad(r, v))
            when = datetime.fromtimestamp(effective, UTC).isoformat().encode()
            hv, kept = store._keyring.seal(PAST % (record_id.encode(), kind.encode(), when),
                                   lambda v, r=record_id, k=tags[kind], e=effective, s=seq: history_aad(r, k, e, s, v))
            outbox_rows.append((seq, record_id, version, sealed, ms / 1000))
            history_rows.append((tags[kind], effective, seq, record_id, None, hv, kept))
        db.execute("BEGIN")
        db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)", outbox_rows)
        db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)", history_rows)
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def config(folder: Path) -> Path:
    text = (ROOT / "config" / "gateway.example.toml").read_text()
    text = text.replace('data_dir = "/var/lib/dho-gateway"', f'data_dir = "{folder}"')
    text = text.replace("insecure_dev = false", "insecure_dev = true").replace("port = 8883", "port = 9")
    text = text.replace('host = "mqtt.dho.example.no"', 'host = "127.0.0.1"')
    path = folder / "gateway.toml"
    path.write_text(text)
    return path


def measure_run(folder: Path, settle_s: float) -> tuple[float, int]:
    """(seconds to the "started" line, peak RSS in KiB after `settle_s` more seconds) of `dho-gateway run`."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config(folder))],
                               cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    started = None
    try:
        for line in process.stderr:
            if " started: " in line:
                started = time.perf_counter() - start
                break
        if started is None:
            raise SystemExit(f"dho-gateway run did not start (exit {process.wait()})")
        time.sleep(settle_s)
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    finally:
        process.terminate()
        process.wait(timeout=30)
    return started, peak


def in_process(folder: Path) -> tuple[float, float]:
    """(ms for one health check's outbox calls, ms for one reading's history window) on a warm store."""
    store = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
    store.depth()  # the one count at start-up (beside it, in a thread); the checks then read counters
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        store.depth()
        store.oldest_pending_age_s()
        store.usage()
    health = (time.perf_counter() - start) * 1000 / runs
    now = time.time()
    start = time.perf_counter()
    for _ in range(runs):
        store.recall(MeasurementKind.BLOOD_PRESSURE.value, since=now - 33 * 86400, until=now, at_least=14)
    window = (time.perf_counter() - start) * 1000 / runs
    store.close()
    return health, window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=1_000_000, help="readings stored before start-up")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after start-up before reading the RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        empty.mkdir()
        full.mkdir()
        load_or_create_key(empty / "outbox.key")
        SealedOutbox(empty / "outbox.sqlite3", load_or_create_key(empty / "outbox.key")).close()
        began = time.perf_counter()
        fill(full, args.readings)
        size = (full / "outbox.sqlite3").stat().st_size
        print(f"filled {args.readings:,} readings (+ history) in {time.perf_counter() - began:.0f} s, "
              f"file {size / 2**20:.0f} MiB")
        rows = []
        for name, folder in (("empty outbox", empty), (f"{args.readings:,} readings", full)):
            started, peak = measure_run(folder, args.settle)
            health, window = in_process(folder)
            rows.append((name, started, peak, health, window))
        base = rows[0]
        print(f"{'':20}{'start-up s':>11} {'ratio':>6} {'peak RSS MiB':>13} {'ratio':>6} "
              f"{'health ms':>10} {'ratio':>6} {'window ms':>10}")
        for name, started, peak, health, window in rows:
            print(f"{name:<20}{started:11.2f} {started / base[1]:6.2f} {peak / 1024:13.1f} {peak / base[2]:6.2f} "
                  f"{health:10.3f} {health / max(base[3], 1e-6):6.2f} {window:10.2f}")
        last = rows[-1]
        # Start-up includes importing Python and the gateway (the empty outbox's time): the goal is on what
        # the stored history adds to it.
        added = last[1] - base[1]
        print(f"goals at {args.readings:,}: start-up added by the stored history {added:.2f} s < 1 s: "
              f"{'PASS' if added < 1 else 'FAIL'}; peak RSS < 60 MiB: {'PASS' if last[2] < 60 * 1024 else 'FAIL'}")


if __name__ == "__main__":
    main()
