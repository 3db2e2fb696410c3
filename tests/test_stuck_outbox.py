"""Readings that have waited long for the central service's ack are a fault on the box itself: with the
central or the broker down no central alert can say it, and bench/chaos.py found that only the central's
silent-kit check, 48 hours later, told anyone (issue 19.11)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.service.health import STUCK_AFTER_S, StorageFacts, StorageWatch
from gateway.settings import load_settings
from gateway.storage import SealedOutbox, load_or_create_key
from tests.kit_support import gateway
from tests.support import config_for


def test_readings_waiting_over_an_hour_are_a_fault_on_the_technicians_page_and_in_the_status() -> None:
    watch = StorageWatch(alert_percent=80)
    assert watch.faults(StorageFacts(1, 3, STUCK_AFTER_S - 60, None, 0, 0)) == []
    faults = watch.faults(StorageFacts(1, 3, 2 * 3600, None, 0, 0))
    assert len(faults) == 1 and "3 reading(s) have waited 2 hours" in faults[0]
    assert "dho-central ingest" in faults[0] and "kept on the box" in faults[0]


def test_status_says_so_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_for(tmp_path, 1)
    g = load_settings(config).gateway
    outbox = SealedOutbox(g.outbox_path, load_or_create_key(g.key_path))
    two_hours_ago = time.time() - 2 * 3600
    monkeypatch.setattr("gateway.storage.outbox.time.time", lambda: two_hours_ago)  # stored back then
    outbox.put("01939a2c-0000-7000-8000-000000000001", b'{"id": "r-1"}')
    monkeypatch.undo()
    outbox.close()
    status = gateway("status", "--config", str(config))
    assert status.returncode == 1, status.stdout + status.stderr
    assert "FAULT: 1 reading(s) have waited 2 hours for the central service's acknowledgement" in status.stdout
