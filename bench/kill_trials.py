"""kill -9 at random moments while a writer process stores and acknowledges readings.

Used by the reliability suite `bench/outbox_kill.py` (1,000 trials) and the CI test (30 trials).
SIGKILL is not power loss: it proves SQLite's commit protocol as we use it, not the SD card's
honesty about fsync.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.storage import SealedOutbox, StoreError, load_or_create_key

ROOT = Path(__file__).parent.parent

# Prints a line only after the commit returned: from then on the reading counts as taken (or gone).
WRITER = """
import sys, uuid
from pathlib import Path
from gateway.storage import load_or_create_key
from gateway.storage import SealedOutbox
folder = Path(sys.argv[1])
store = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
print("ready", flush=True)
n = 0
while True:
    rid = str(uuid.uuid4())
    store.put(rid, b'{"reading": "%s"}' % rid.encode(), dedup=rid)
    print("put", rid, flush=True)
    n += 1
    if n % 10 == 0:
        oldest = [e.id for e in store.pending(0, 5)]
        print("acking", *oldest, flush=True)  # killed during the ack, these may be either kept or gone
        store.acknowledge(oldest)
        print("acked", *oldest, flush=True)
"""


@dataclass
class KillReport:
    trials: int = 0
    committed: int = 0
    acknowledged: int = 0
    missing: list[str] = field(default_factory=list)  # committed, never acknowledged, and gone
    resurrected: list[str] = field(default_factory=list)  # acknowledged, and back
    open_failures: list[str] = field(default_factory=list)


def run_trials(folder: Path, trials: int, seed: int, max_delay_s: float = 0.15) -> KillReport:
    rng = random.Random(seed)
    report = KillReport()
    taken: set[str] = set()
    acked: set[str] = set()
    acking: set[str] = set()
    for _ in range(trials):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True,
                                  cwd=ROOT)
        assert writer.stdout is not None
        if writer.stdout.readline().strip() != "ready":
            report.open_failures.append(f"trial {report.trials}: the writer could not open the store")
            writer.kill()
            writer.wait()
            break
        time.sleep(rng.uniform(0.0, max_delay_s))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        for line in writer.stdout:
            what, *ids = line.split()
            {"put": taken, "acking": acking, "acked": acked}[what].update(ids)
        report.trials += 1
        try:
            store = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
        except StoreError as exc:
            report.open_failures.append(f"trial {report.trials}: {exc}")
            break
        stored = {entry.id for entry in store.pending(0, 10**9)}
        store.close()
        report.missing = sorted(taken - acking - stored)
        report.resurrected = sorted(acked & stored)
        if report.missing or report.resurrected:
            break
    report.committed, report.acknowledged = len(taken), len(acked)
    return report
