"""Bluetooth LE in production: the bleak device source and the BlueZ glue (agent, bonds, scan watchdog)."""

from __future__ import annotations

from gateway.ble.bluez import (
    BondRecovery,
    PairingAgent,
    PairingPolicy,
    Rejected,
    ScanWatchdog,
    address_of,
    connect_bluez,
    register_agent,
)
from gateway.ble.source import BleBackends, BleDeviceSource, BluetoothUnavailable

__all__ = [
    "BleBackends",
    "BleDeviceSource",
    "BluetoothUnavailable",
    "BondRecovery",
    "PairingAgent",
    "PairingPolicy",
    "Rejected",
    "ScanWatchdog",
    "address_of",
    "connect_bluez",
    "register_agent",
]
