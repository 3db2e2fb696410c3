"""Vendor device quirks: one file per vendor, each citing its public evidence.

Each file imports only `drivers.quirks`; `drivers.known_devices` collects them.
"""
