"""The running process: runtime supervision, health and events, device sources, the command line."""

from __future__ import annotations

from gateway.service.device_sources import DeviceSource, open_device_source
from gateway.service.health import EventDetail, StorageFacts, StorageWatch, device_faults
from gateway.service.runtime import Gateway

__all__ = [
    "DeviceSource",
    "EventDetail",
    "Gateway",
    "StorageFacts",
    "StorageWatch",
    "device_faults",
    "open_device_source",
]
