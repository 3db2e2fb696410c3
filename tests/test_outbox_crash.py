"""kill -9 at random moments while a writer stores and acknowledges readings (30 trials here; the
1,000-trial reliability suite is `bench/outbox_kill.py`)."""

from __future__ import annotations

from pathlib import Path

from bench.kill_trials import run_trials


def test_committed_readings_survive_sigkill_and_acknowledged_ones_stay_gone(tmp_path: Path) -> None:
    report = run_trials(tmp_path, trials=30, seed=20261124)
    assert report.open_failures == []
    assert report.missing == [], f"{len(report.missing)} committed reading(s) missing after kill -9"
    assert report.resurrected == []
    assert report.trials == 30
    assert report.committed > 30 and report.acknowledged > 0  # the kills landed in the middle of real work
