"""Bluetooth LE in production: the bleak device source and the BlueZ glue (agent, bonds, scan watchdog)."""

from __future__ import annotations

from gateway.ble.backends import BleBackends
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
from gateway.ble.nearby import (
    HEALTH_SERVICES,
    BluezRadio,
    Nearby,
    PairingRadio,
    backends_of,
    classify,
    pairing_scan,
)
from gateway.ble.source import BleDeviceSource, BluetoothUnavailable

__all__ = [
    "HEALTH_SERVICES",
    "BleBackends",
    "BleDeviceSource",
    "BluetoothUnavailable",
    "BluezRadio",
    "BondRecovery",
    "Nearby",
    "PairingAgent",
    "PairingPolicy",
    "PairingRadio",
    "Rejected",
    "ScanWatchdog",
    "address_of",
    "backends_of",
    "classify",
    "connect_bluez",
    "pairing_scan",
    "register_agent",
]
