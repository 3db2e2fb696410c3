"""The running process: runtime supervision, health and events, the device source interface (with its
"not supported" defaults and an idle source that delivers nothing), the command line."""

from __future__ import annotations

from gateway.service.device_sources import BaseDeviceSource, DeviceSource, IdleDeviceSource, open_device_source
from gateway.service.health import EventDetail, StorageFacts, StorageWatch, device_faults
from gateway.service.runtime import Gateway

__all__ = [
    "BaseDeviceSource",
    "DeviceSource",
    "EventDetail",
    "Gateway",
    "IdleDeviceSource",
    "StorageFacts",
    "StorageWatch",
    "device_faults",
    "open_device_source",
]
