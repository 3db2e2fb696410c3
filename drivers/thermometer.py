"""Health Thermometer: Temperature Measurement (0x2A1C; Intermediate Temperature 0x2A1E has the same layout).

The temperature is an IEEE-11073 FLOAT; Fahrenheit becomes Celsius here.
"""

from __future__ import annotations

from decimal import Decimal

from drivers.fields import Fields
from drivers.ieee11073 import SpecialValue
from drivers.measurement import DecodeError, Measurement, MeasurementKind, Quantity

TEMPERATURE_TYPES = {1: "armpit", 2: "body", 3: "ear", 4: "finger", 5: "gastro-intestinal tract", 6: "mouth",
                     7: "rectum", 8: "toe", 9: "tympanum"}


def decode_temperature(data: bytes) -> Measurement:
    """A Temperature Measurement in Cel (Fahrenheit converted, to 0.01).

    `DecodeError` for a special value or any value outside -100..300 degrees, or a reserved temperature type.
    """
    what = "temperature measurement"
    f = Fields(data, what)
    flags = f.uint(1, "flags")
    try:
        value = f.float32("temperature")
    except SpecialValue as exc:
        raise DecodeError(f"no temperature measured: {exc}") from exc
    if not -100 <= value <= 300:  # a FLOAT can say 1e22; no thermometer does
        raise DecodeError(f"{what}: {value} degrees is outside any thermometer's range")
    if flags & 0x01:
        value = ((value - 32) * 5 / 9).quantize(Decimal("0.01"))
    device_time = f.date_time() if flags & 0x02 else None
    if flags & 0x04:
        site = f.uint(1, "temperature type")
        if site not in TEMPERATURE_TYPES:
            raise DecodeError(f"{what}: temperature type {site} is reserved")
    return Measurement(kind=MeasurementKind.BODY_TEMPERATURE,
                       components={"temperature": Quantity(value=value, unit="Cel")}, device_time=device_time)
