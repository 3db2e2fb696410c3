"""Bluetooth SIG assigned numbers used by the drivers (and by the simulators, which may share them)."""

from __future__ import annotations

_BASE = "0000{:04x}-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The full 128-bit UUID string of a 16-bit SIG-assigned number, lower case as bleak reports it."""
    return _BASE.format(short)


BLOOD_PRESSURE_SERVICE = uuid16(0x1810)
BLOOD_PRESSURE_MEASUREMENT = uuid16(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = uuid16(0x2A36)
BLOOD_PRESSURE_FEATURE = uuid16(0x2A49)
