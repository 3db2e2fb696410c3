"""Which decoder reads which characteristic."""

from __future__ import annotations

from collections.abc import Callable

from drivers import glucose, pulse_oximeter, thermometer, uuids, weight
from drivers.blood_pressure import decode_blood_pressure
from drivers.measurement import DecodeError, Measurement

Decoder = Callable[[bytes], Measurement]

# Characteristics that carry a patient measurement. Intermediate values (0x2A36 cuff pressure while
# inflating, 0x2A1E intermediate temperature) are deliberately absent: they are not readings.
DECODERS: dict[str, Decoder] = {
    uuids.BLOOD_PRESSURE_MEASUREMENT: decode_blood_pressure,
    uuids.PLX_SPOT_CHECK: pulse_oximeter.decode_spot_check,
    uuids.PLX_CONTINUOUS: pulse_oximeter.decode_continuous,
    uuids.WEIGHT_MEASUREMENT: lambda data: weight.decode_weight(data),
    uuids.TEMPERATURE_MEASUREMENT: thermometer.decode_temperature,
    uuids.GLUCOSE_MEASUREMENT: glucose.decode_glucose_measurement,
    # Advertising scales: the "characteristic" is the service-data UUID the weight arrives under.
    weight.MI_SCALE_SERVICE_DATA: weight.decode_mi_scale,
    weight.MI_BODY_COMPOSITION_SERVICE_DATA: weight.decode_mi_body_composition,
}


def decode(characteristic: str, data: bytes) -> Measurement:
    """The measurement in `data`, by the decoder of `characteristic` (a UUID, any case).

    Raises `DecodeError` (one line naming the field) for bytes that are not a measurement, and for a
    characteristic no decoder knows.
    """
    decoder = DECODERS.get(characteristic.lower())
    if decoder is None:
        raise DecodeError(f"no decoder for characteristic {characteristic}")
    return decoder(data)
