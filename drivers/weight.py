"""Weight Scale Service.

Weight Measurement (0x2A9D) and Weight Scale Feature (0x2A9E), and the weight that advertising scales (Xiaomi
Mi scales) carry in service data (device-protocols.md §3.3, §4.5).

Resolution rule: the Weight field is always 0.005 kg (or 0.01 lb) per step, as the specification
says and openScale and A&D decode it; the scale's declared resolution (feature bits 3-6) only rounds
the value to the precision the scale really has. Pounds become kilograms here, never in zoning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from drivers.fields import Fields
from drivers.measurement import DecodeError, Measurement, MeasurementKind, NotFinal, Quantity

KG_PER_LB = Decimal("0.45359237")
M_PER_INCH = Decimal("0.0254")
_UNKNOWN_USER = 0xFF
_UNSUCCESSFUL = 0xFFFF

# Weight Scale Feature bits 3-6: resolution index -> (kg, lb)
WEIGHT_RESOLUTION: dict[int, tuple[Decimal, Decimal]] = {
    1: (Decimal("0.5"), Decimal(1)), 2: (Decimal("0.2"), Decimal("0.5")), 3: (Decimal("0.1"), Decimal("0.2")),
    4: (Decimal("0.05"), Decimal("0.1")), 5: (Decimal("0.02"), Decimal("0.05")),
    6: (Decimal("0.01"), Decimal("0.02")), 7: (Decimal("0.005"), Decimal("0.01")),
}


@dataclass(frozen=True)
class WeightScaleFeatures:
    """What a scale says it supports (Weight Scale Feature, 0x2A9E); its weight resolution in kg if it says one."""

    time_stamp: bool
    multiple_users: bool
    bmi: bool
    weight_resolution_kg: Decimal | None  # None: not specified


def decode_feature(data: bytes) -> WeightScaleFeatures:
    """Weight Scale Feature (0x2A9E); `DecodeError` if cut off."""
    bits = Fields(data, "weight scale feature").uint(4, "features")
    resolution = WEIGHT_RESOLUTION.get((bits >> 3) & 0x0F)
    return WeightScaleFeatures(time_stamp=bool(bits & 0x01), multiple_users=bool(bits & 0x02), bmi=bool(bits & 0x04),
                               weight_resolution_kg=resolution[0] if resolution else None)


def _kg(raw: int, imperial: bool) -> Decimal:
    # Exact: 0.005 kg steps, or 0.01 lb steps converted with the exact pound (0.45359237 kg).
    return raw * Decimal("0.005") if not imperial else (raw * Decimal("0.01") * KG_PER_LB).quantize(Decimal("0.0001"))


def decode_weight(data: bytes, resolution_kg: Decimal | None = None) -> Measurement:
    """A Weight Measurement (0x2A9D): weight in kg (pounds converted exactly), BMI and height if sent, the user id.

    `resolution_kg` (from the scale's features) rounds the weight to the precision the scale has.
    Raises `DecodeError` for an unsuccessful measurement, 0 kg, or bytes that are cut off.
    """
    what = "weight measurement"
    f = Fields(data, what)
    flags = f.uint(1, "flags")
    imperial = bool(flags & 0x01)
    raw = f.uint(2, "weight")
    if raw == _UNSUCCESSFUL:
        raise DecodeError(f"{what}: the scale reports the measurement unsuccessful")
    weight = _kg(raw, imperial)
    if resolution_kg is not None:
        weight = weight.quantize(resolution_kg)  # to its decimal places: the precision the scale has
    components = {"weight": Quantity(value=weight, unit="kg")}
    device_time = f.date_time() if flags & 0x02 else None
    user_id = None
    if flags & 0x04:
        user = f.uint(1, "user id")
        user_id = None if user == _UNKNOWN_USER else user
    if flags & 0x08:
        components["bmi"] = Quantity(value=f.uint(2, "BMI") * Decimal("0.1"), unit="kg/m2")
        height = f.uint(2, "height")
        metres = height * Decimal("0.001") if not imperial else (height * Decimal("0.1") * M_PER_INCH)
        components["height"] = Quantity(value=metres.quantize(Decimal("0.001")), unit="m")
    if weight == 0:
        raise DecodeError(f"{what}: 0 kg is not a weighing")
    return Measurement(kind=MeasurementKind.BODY_WEIGHT, components=components, device_time=device_time,
                       user_id=user_id)


# --- advertising scales --------------------------------------------------------------------------

MI_SCALE_SERVICE_DATA = "0000181d-0000-1000-8000-00805f9b34fb"
MI_BODY_COMPOSITION_SERVICE_DATA = "0000181b-0000-1000-8000-00805f9b34fb"


def _advert_time(data: bytes, at: int) -> datetime | None:
    year = int.from_bytes(data[at : at + 2], "little")
    month, day, hour, minute, second = data[at + 2 : at + 7]
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def decode_mi_scale_advert(service_uuid: str, data: bytes) -> Measurement | None:
    """Weight from a Mi scale's service data.

    None while the weight is not yet stable or has been removed (the scale advertises every intermediate
    value). The same weighing is advertised many times with the same bytes: the embedded time stamp lets the
    pipeline keep it once.
    """
    if service_uuid == MI_SCALE_SERVICE_DATA:
        if len(data) < 10:
            raise DecodeError(f"Mi scale service data needs 10 bytes, got {len(data)}")
        status, raw, time_at = data[0], int.from_bytes(data[1:3], "little"), 3
        stable, removed, pounds, catty = status & 0x20, status & 0x80, status & 0x01, status & 0x10
    elif service_uuid == MI_BODY_COMPOSITION_SERVICE_DATA:
        if len(data) < 13:
            raise DecodeError(f"Mi body composition service data needs 13 bytes, got {len(data)}")
        status, raw, time_at = data[1], int.from_bytes(data[11:13], "little"), 2
        stable, removed, pounds, catty = status & 0x20, status & 0x80, data[0] & 0x01, status & 0x40
    else:
        raise DecodeError(f"not Mi scale service data: {service_uuid}")
    if not stable or removed:
        return None
    if catty:
        raise DecodeError("the scale is set to catty (jin): set it to kg or lb")
    weight = (raw * Decimal("0.01") * KG_PER_LB).quantize(Decimal("0.001")) if pounds else raw / Decimal(200)
    if weight == 0:
        raise DecodeError("Mi scale: 0 kg is not a weighing")
    return Measurement(kind=MeasurementKind.BODY_WEIGHT, components={"weight": Quantity(value=weight, unit="kg")},
                       device_time=_advert_time(data, time_at))


def _advert_decoder(service_uuid: str) -> Callable[[bytes], Measurement]:
    def decode(data: bytes) -> Measurement:
        m = decode_mi_scale_advert(service_uuid, data)
        if m is None:
            raise NotFinal("the scale is still settling, or the person stepped off")
        return m
    return decode


decode_mi_scale = _advert_decoder(MI_SCALE_SERVICE_DATA)
decode_mi_body_composition = _advert_decoder(MI_BODY_COMPOSITION_SERVICE_DATA)
