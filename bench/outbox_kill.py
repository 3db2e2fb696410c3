"""Reliability suite: kill -9 a writer of the sealed outbox at random points, many times.

    .venv/bin/python bench/outbox_kill.py [--trials 1000] [--seed N]

Prints committed readings, acknowledged ones, committed-but-missing (must be 0), acknowledged-but-back
(must be 0), and whether the store opened after every kill. Exit status 1 if any of those fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from bench.kill_trials import run_trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dho-kill-") as folder:
        report = run_trials(Path(folder), args.trials, args.seed)
    elapsed = time.perf_counter() - start
    print(f"kill -9 trials:                {report.trials} of {args.trials} (seed {args.seed}, {elapsed:.0f} s)")
    print(f"readings committed:            {report.committed}")
    print(f"readings acknowledged:         {report.acknowledged}")
    print(f"committed but missing:         {len(report.missing)}")
    print(f"acknowledged but back:         {len(report.resurrected)}")
    print(f"store failed to open:          {len(report.open_failures)} {report.open_failures[:1]}")
    ok = report.trials == args.trials and not (report.missing or report.resurrected or report.open_failures)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
