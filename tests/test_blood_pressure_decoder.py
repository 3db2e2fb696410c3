"""0x2A35 Blood Pressure Measurement, vectors worked out from the GATT Specification Supplement.

Layout: flags u8 | systolic SFLOAT | diastolic SFLOAT | mean arterial pressure SFLOAT |
[time stamp 7 B if flags bit 1] | [pulse rate SFLOAT if bit 2] | [user id u8 if bit 3] |
[measurement status u16 if bit 4]. Flags bit 0: 0 = mmHg, 1 = kPa. All little-endian.
SFLOAT: u16, exponent = signed high 4 bits, mantissa = signed low 12 bits; value = m * 10^e.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.blood_pressure import decode_blood_pressure
from drivers.decoders import decode
from drivers.ieee11073 import float32, sfloat
from drivers.measurement import DecodeError, DeviceFlag, Measurement
from drivers.uuids import BLOOD_PRESSURE_MEASUREMENT


def test_minimal_mmhg_without_optional_fields() -> None:
    # flags 0x00: mmHg, nothing optional. 120 = 0x0078 (e=0) -> 78 00; 80 = 0x0050 -> 50 00;
    # mean 93 = 0x005D -> 5D 00.
    m = decode_blood_pressure(bytes.fromhex("00 7800 5000 5D00"))
    assert m.components["systolic"].value == 120
    assert m.components["diastolic"].value == 80
    assert m.components["mean"].value == 93
    assert m.components["systolic"].unit == "mm[Hg]"
    assert m.device_time is None and m.user_id is None and m.flags == frozenset()
    assert "pulse" not in m.components


def test_every_field_present() -> None:
    # flags 0x1E = time stamp (0x02) + pulse (0x04) + user (0x08) + status (0x10), mmHg.
    # time 2013-08-26 09:10:20 = DD 07 | 08 | 1A | 09 | 0A | 14 (year 2013 = 0x07DD).
    # pulse 72 = 0x0048 -> 48 00; user 2; status 0x0005 = body movement (bit 0) + irregular pulse (bit 2).
    data = bytes.fromhex("1E 8C00 5A00 6A00 DD07081A090A14 4800 02 0500")
    m = decode_blood_pressure(data)
    assert (m.components["systolic"].value, m.components["diastolic"].value) == (Decimal(140), Decimal(90))
    assert m.components["mean"].value == 106
    assert m.components["pulse"].value == 72 and m.components["pulse"].unit == "/min"
    assert m.device_time == datetime(2013, 8, 26, 9, 10, 20)
    assert m.user_id == 2
    assert m.flags == {DeviceFlag.BODY_MOVEMENT, DeviceFlag.IRREGULAR_PULSE}


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (0x0002, {DeviceFlag.CUFF_TOO_LOOSE}),
        (0x0008, {DeviceFlag.PULSE_ABOVE_RANGE}),  # bits 3-4 = 01
        (0x0010, {DeviceFlag.PULSE_BELOW_RANGE}),  # bits 3-4 = 10
        (0x0018, set()),  # bits 3-4 = 11: reserved, not a flag
        (0x0020, {DeviceFlag.IMPROPER_POSITION}),
        (0xFFC0, set()),  # reserved bits 6-15 carry nothing
    ],
)
def test_measurement_status_bits(status: int, flags: set[DeviceFlag]) -> None:
    data = bytes.fromhex("10 7800 5000 5D00") + status.to_bytes(2, "little")
    assert decode_blood_pressure(data).flags == flags


def test_kpa_is_converted_to_mmhg() -> None:
    # flags 0x01 = kPa. 17.6 kPa: mantissa 176 = 0x0B0, exponent -1 = 0xF -> raw 0xF0B0 -> B0 F0.
    # 10.7 kPa = 0xF06B -> 6B F0; mean 13.3 kPa = 0xF085 -> 85 F0.
    # 17.6 * 7.50062 = 132.01 -> 132.0 mmHg; 10.7 -> 80.26 -> 80.3; 13.3 -> 99.76 -> 99.8.
    m = decode_blood_pressure(bytes.fromhex("01 B0F0 6BF0 85F0"))
    assert m.components["systolic"].value == Decimal("132.0")
    assert m.components["diastolic"].value == Decimal("80.3")
    assert m.components["mean"].value == Decimal("99.8")
    assert all(q.unit == "mm[Hg]" for q in m.components.values())


def test_nan_mean_is_absent_not_a_number() -> None:
    # Many cuffs send NaN (0x07FF -> FF 07) for the mean: the reading stays valid without it.
    m = decode_blood_pressure(bytes.fromhex("00 7800 5000 FF07"))
    assert "mean" not in m.components
    assert "NaN" in m.absent["mean"]


@pytest.mark.parametrize("special", ["FF07", "0008", "FE07", "0208", "0108"])
def test_special_systolic_is_a_rejection(special: str) -> None:
    with pytest.raises(DecodeError, match="systolic/diastolic"):
        decode_blood_pressure(bytes.fromhex(f"00 {special} 5000 5D00"))


def test_unknown_user_and_unknown_time() -> None:
    # user id 0xFF means "unknown user"; year 0 means the device does not know the date.
    m = decode_blood_pressure(bytes.fromhex("0A 7800 5000 5D00 00000000000000 FF"))
    assert m.user_id is None and m.device_time is None


@pytest.mark.parametrize(
    ("hexdata", "reason"),
    [
        ("00 7800 50", "at least 7 bytes"),
        ("02 7800 5000 5D00 DD0708", "time stamp"),
        ("08 7800 5000 5D00", "user id"),
        ("10 7800 5000 5D00 05", "measurement status"),
        ("02 7800 5000 5D00 DD070D1A090A14", "not a date"),  # month 13
    ],
)
def test_truncated_or_impossible_values_are_rejected(hexdata: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_blood_pressure(bytes.fromhex(hexdata))


def test_sfloat_and_float_worked_values() -> None:
    # From the reference's worked values: 78 00 -> 120; B0 F0 -> 17.6; FLOAT 71 01 00 FF -> 36.9.
    assert sfloat(bytes.fromhex("7800")) == 120
    assert sfloat(bytes.fromhex("B0F0")) == Decimal("17.6")
    assert sfloat(bytes.fromhex("5FB0")) == Decimal("95E-5")
    assert float32(bytes.fromhex("710100FF")) == Decimal("36.9")
    # Negative mantissa: 0xFFF = -1, exponent 0 -> -1.
    assert sfloat(bytes.fromhex("FF0F")) == -1


def test_decode_dispatches_by_characteristic() -> None:
    assert decode(BLOOD_PRESSURE_MEASUREMENT.upper(), bytes.fromhex("00 7800 5000 5D00")).kind == "blood_pressure"
    with pytest.raises(DecodeError, match="no decoder"):
        decode("00002a99-0000-1000-8000-00805f9b34fb", b"\x00")


@given(st.binary(max_size=40))
def test_any_bytes_give_a_measurement_or_a_decode_error(data: bytes) -> None:
    try:
        result = decode_blood_pressure(data)
    except DecodeError:
        return
    assert isinstance(result, Measurement)
    assert {"systolic", "diastolic"} <= result.components.keys()
