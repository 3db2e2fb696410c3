"""The benchmarks still run (tiny sizes): a benchmark that breaks unnoticed measures nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

RUNS = [
    ("bench/outbox.py", "--sizes", "20", "--sample", "20"),
    ("bench/zoning.py", "--per-day", "1", "--runs", "20"),
    ("bench/ble.py", "--decodes", "20", "--indications", "20"),
    ("bench/outbox_kill.py", "--trials", "2"),
    ("bench/latency.py", "--readings", "3", "--interval", "0.05"),
    ("bench/plans.py", "--runs", "5"),
    ("bench/web.py", "--readings", "3", "--settle", "1"),
    ("bench/outbox_history.py", "--readings", "200", "--settle", "0.5"),
    ("bench/memory.py", "--readings", "200", "--idle", "1", "--settle", "0.5"),
    ("bench/pipeline_day.py", "--readings", "20", "--sample", "5", "--rounds", "1"),
    ("bench/fhir.py", "--readings", "60", "--patients", "3", "--clients", "2", "--seconds", "0.5"),
    ("bench/chaos.py", "--seed", "3", "--readings", "5", "--faults", "2", "--kinds", "kill,worker", "--seconds", "30",
     "--settle", "20"),
]


@pytest.mark.parametrize("command", RUNS, ids=[r[0] for r in RUNS])
def test_benchmark_runs(command: tuple[str, ...]) -> None:
    run = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ratio" in run.stdout or "PASS" in run.stdout
