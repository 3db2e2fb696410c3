"""kill -9 at random moments while a writer process stores readings: every reading whose `put`
returned must be there afterwards, and the store must open every time. (SIGKILL is not power loss:
it proves SQLite's commit protocol as we use it, not the SD card's honesty about fsync.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.keys import load_or_create_key
from gateway.store import SealedOutbox

TRIALS = 30
WRITER = """
import sys, uuid
from pathlib import Path
from gateway.keys import load_or_create_key
from gateway.store import SealedOutbox
folder = Path(sys.argv[1])
store = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
print("ready", flush=True)
while True:
    rid = str(uuid.uuid4())
    store.put(rid, b'{"reading": "%s"}' % rid.encode(), dedup=rid)
    print(rid, flush=True)  # only after the commit returned: this reading counts as taken
"""


def test_committed_readings_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    committed: list[str] = []
    for _ in range(TRIALS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        committed += [line.strip() for line in writer.stdout if len(line.strip()) == 36]
        store = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
        stored = {entry.id for entry in store.pending(0, 10**9)}
        store.close()
        missing = [rid for rid in committed if rid not in stored]
        assert missing == [], f"{len(missing)} committed reading(s) missing after kill -9"
    assert len(committed) > TRIALS  # the kills did land in the middle of real writing
