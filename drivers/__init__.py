"""Device drivers: GATT bytes in, typed `Measurement`s (or a `DecodeError`) out.

Decoders are pure functions of bytes; connection handling lives apart from them, in
`drivers.transport` (the one module that imports bleak). Its names are exported here too, but loaded
only when first used, so that pure users of the measurement types (zoning) never import a radio stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers import uuids
from drivers.decoders import DECODERS, decode
from drivers.delivery import Deliver, Delivery
from drivers.device_info import decode_current_time
from drivers.gatt_time import date_time
from drivers.known_devices import STANDARD, named_quirks, quirks_for
from drivers.measurement import COMPONENTS, DecodeError, DeviceFlag, Measurement, MeasurementKind, NotFinal, Quantity
from drivers.quirks import DeviceQuirks

if TYPE_CHECKING:
    from drivers.transport import Session, SessionError, SessionReport, connect, run_session

_TRANSPORT = frozenset({"Session", "SessionError", "SessionReport", "connect", "run_session"})

__all__ = [
    "COMPONENTS",
    "DECODERS",
    "STANDARD",
    "DecodeError",
    "Deliver",
    "Delivery",
    "DeviceFlag",
    "DeviceQuirks",
    "Measurement",
    "MeasurementKind",
    "NotFinal",
    "Quantity",
    "Session",
    "SessionError",
    "SessionReport",
    "connect",
    "date_time",
    "decode",
    "decode_current_time",
    "named_quirks",
    "quirks_for",
    "run_session",
    "uuids",
]


def __getattr__(name: str) -> Any:
    if name in _TRANSPORT:
        from drivers import transport

        return getattr(transport, name)
    raise AttributeError(f"module 'drivers' has no attribute {name!r}")
