"""Simulated BLE health devices. They encode their bytes on their own, never with the drivers' code,
so a decoding bug cannot hide behind a mirrored encoding bug."""
