"""Which decoder reads which characteristic."""

from __future__ import annotations

from collections.abc import Callable

from drivers import uuids
from drivers.blood_pressure import decode_blood_pressure
from drivers.measurement import DecodeError, Measurement

Decoder = Callable[[bytes], Measurement]

DECODERS: dict[str, Decoder] = {
    uuids.BLOOD_PRESSURE_MEASUREMENT: decode_blood_pressure,
}


def decode(characteristic: str, data: bytes) -> Measurement:
    decoder = DECODERS.get(characteristic.lower())
    if decoder is None:
        raise DecodeError(f"no decoder for characteristic {characteristic}")
    return decoder(data)
