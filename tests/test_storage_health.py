"""Storage alerts: the status faults a technician sees and the events sent once per change."""

from __future__ import annotations

import pytest

from gateway.service import StorageFacts, StorageWatch


def facts(used: int, fault: str | None = None, held: int = 0, refused: int = 0,
          oldest_s: float = 6 * 86400) -> StorageFacts:
    return StorageFacts(used_percent=used, waiting=1234, oldest_waiting_s=oldest_s, storage_fault=fault,
                        held=held, refused=refused)


@pytest.mark.parametrize(("used", "alert"), [(79, False), (80, True), (81, True), (100, True)])
def test_the_alert_level_is_inclusive(used: int, alert: bool) -> None:
    faults = StorageWatch(alert_percent=80).faults(facts(used))
    if alert:
        assert faults == [f"outbox {used}% full (1234 reading(s) waiting, the oldest for 6 days): "
                          "readings are not reaching the central service"]
    else:  # not near full, but waiting 6 days: said all the same (tests/test_stuck_outbox.py)
        assert faults == ["1234 reading(s) have waited 6 days for the central service's acknowledgement: is the "
                          "broker reachable and the central service (dho-central ingest) running? They are kept on "
                          "the box"]


def test_each_change_is_one_event_not_one_per_check() -> None:
    watch = StorageWatch(alert_percent=80)
    assert watch.changes(facts(50)) == []
    assert [k for k, _ in watch.changes(facts(85))] == ["outbox_near_limit"]
    assert watch.changes(facts(90)) == []
    assert [k for k, _ in watch.changes(facts(100, fault="outbox full", held=3))] == ["storage_fault"]
    assert watch.changes(facts(100, fault="outbox full", held=7)) == []
    assert [k for k, _ in watch.changes(facts(60))] == ["outbox_below_limit", "storage_recovered"]


def test_a_storage_fault_says_what_is_held_and_what_was_not_taken() -> None:
    (fault,) = StorageWatch(alert_percent=99).faults(facts(10, fault="disk full", held=1000, refused=4,
                                                           oldest_s=60))
    assert fault == "disk full; 1000 reading(s) held in memory, 4 NOT taken (devices with a memory send them again)"


def test_event_details_carry_no_patient_data() -> None:
    watch = StorageWatch(alert_percent=80)
    ((_, detail),) = watch.changes(facts(85))
    assert detail == {"used_percent": 85, "waiting": 1234, "oldest_waiting_s": 518400}


def test_device_faults_name_the_device_and_what_to_do() -> None:
    from gateway.service import device_faults
    from protocol import DeviceStatus

    devices = [DeviceStatus(id="SIMGLUCO0001", kind="glucose", battery=8),
               DeviceStatus(id="SIMBPM0001", kind="blood_pressure", battery=20),
               DeviceStatus(id="SIMOXI0001", kind="spo2", battery=None, needs_pairing=True)]
    assert device_faults(devices) == [
        "device SIMGLUCO0001 (glucose) battery 8 %: replace the batteries",
        "device SIMOXI0001 (spo2) lost its pairing: put it in pairing mode near the gateway"]
