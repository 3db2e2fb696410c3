"""Storage health: what the status reports as faults, and which changes become events.

Pure: the caller passes in the measured facts; `StorageWatch` remembers only the previous state so an
event is sent once per change, not on every check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from protocol import DeviceStatus, EventKind

LOW_BATTERY_PERCENT = 20

# The detail of an event as it goes on the wire (protocol `Event.detail`).
EventDetail = dict[str, str | int | float]


class StorageFacts(NamedTuple):
    """What the outbox measured at one check: how full (%), how many waiting and since when (s), faults."""

    used_percent: int
    waiting: int
    oldest_waiting_s: float | None
    storage_fault: str | None  # why the last reading could not be stored, while that lasts
    held: int  # readings waiting in memory for the disk
    refused: int  # readings not taken because memory was full too


# Readings waiting longer than this for the central service's acknowledgement are a fault on the box itself
# (status, technician page): with the central or the broker down, no central alert can say it (bench/chaos.py
# found that only the central's silent-kit check, 48 h later, told anyone).
STUCK_AFTER_S = 3600.0


def stuck_fault(waiting: int, oldest_waiting_s: float | None) -> str | None:
    """The fault for readings that have waited over STUCK_AFTER_S for the central's ack, or None."""
    if not waiting or oldest_waiting_s is None or oldest_waiting_s < STUCK_AFTER_S:
        return None
    return (f"{waiting} reading(s) have waited {_duration(oldest_waiting_s)} for the central service's "
            "acknowledgement: is the broker reachable and the central service (dho-central ingest) running? "
            "They are kept on the box")


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


@dataclass
class StorageWatch:
    """Turns storage facts into status faults and, once per change, events; `alert_percent` is "near full"."""

    alert_percent: int
    _near: bool = field(default=False, init=False)
    _faulty: bool = field(default=False, init=False)

    def faults(self, f: StorageFacts) -> list[str]:
        faults = []
        if f.storage_fault is not None:
            faults.append(
                f"{f.storage_fault}; {f.held} reading(s) held in memory"
                + (f", {f.refused} NOT taken (devices with a memory send them again)" if f.refused else "")
            )
        stuck = stuck_fault(f.waiting, f.oldest_waiting_s)
        if stuck is not None and f.used_percent < self.alert_percent:  # "near full" below says it with the age
            faults.append(stuck)
        if f.used_percent >= self.alert_percent:
            oldest = "" if f.oldest_waiting_s is None else f", the oldest for {_duration(f.oldest_waiting_s)}"
            faults.append(
                f"outbox {f.used_percent}% full ({f.waiting} reading(s) waiting{oldest}): readings are not "
                "reaching the central service"
            )
        return faults

    def changes(self, f: StorageFacts) -> list[tuple[EventKind, EventDetail]]:
        events: list[tuple[EventKind, EventDetail]] = []
        near = f.used_percent >= self.alert_percent
        if near != self._near:
            detail: EventDetail = {"used_percent": f.used_percent, "waiting": f.waiting}
            if f.oldest_waiting_s is not None:
                detail["oldest_waiting_s"] = round(f.oldest_waiting_s)
            events.append(("outbox_near_limit" if near else "outbox_below_limit", detail))
            self._near = near
        faulty = f.storage_fault is not None
        if faulty != self._faulty:
            if f.storage_fault is not None:
                events.append(("storage_fault", {"reason": f.storage_fault, "held": f.held}))
            else:
                events.append(("storage_recovered", {}))
            self._faulty = faulty
        return events


def device_faults(devices: list[DeviceStatus]) -> list[str]:
    """What a technician must do about the devices: batteries, and bonds to make again."""
    faults = []
    for d in devices:
        if d.battery is not None and d.battery < LOW_BATTERY_PERCENT:
            faults.append(f"device {d.id} ({d.kind}) battery {d.battery} %: replace the batteries")
        if d.needs_pairing:
            faults.append(f"device {d.id} ({d.kind}) lost its pairing: put it in pairing mode near the gateway")
    return faults
