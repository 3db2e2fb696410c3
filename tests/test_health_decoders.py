"""Decoders for the pulse oximeter, scale, thermometer, glucose meter and device characteristics, with
byte vectors worked out from the GATT specification (layouts: shared/reference/device-protocols.md,
which cites the SIG GATT XML) and from public real-device code where it exists."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import uuids
from drivers.decoders import DECODERS, decode
from drivers.device_info import (
    decode_battery,
    decode_blood_pressure_feature,
    decode_current_time,
    decode_string,
    encode_current_time,
)
from drivers.glucose import decode_context, decode_glucose
from drivers.measurement import DecodeError, DeviceFlag, Measurement
from drivers.pulse_oximeter import decode_continuous, decode_features, decode_spot_check
from drivers.thermometer import decode_temperature
from drivers.weight import (
    MI_BODY_COMPOSITION_SERVICE_DATA,
    MI_SCALE_SERVICE_DATA,
    decode_feature,
    decode_mi_scale_advert,
    decode_weight,
)

H = bytes.fromhex

# ---- PLX spot-check 0x2A5E ----------------------------------------------------------------------
# SpO2 97 % = SFLOAT exponent 0, mantissa 97 = 0x0061 -> 61 00; pulse 72 = 0x0048 -> 48 00.
# Time stamp 2026-11-24 08:30:05 = year 2026 = 0x07EA -> EA 07 | 0B | 18 | 08 | 1E | 05.


def test_spot_check_minimal() -> None:
    m = decode_spot_check(H("00 6100 4800"))
    assert (m.components["spo2"].value, m.components["spo2"].unit) == (97, "%")
    assert (m.components["pulse"].value, m.components["pulse"].unit) == (72, "/min")
    assert m.device_time is None and m.flags == frozenset()


def test_spot_check_with_time_status_and_perfusion_index() -> None:
    # flags 0x0F: time stamp + measurement status + device/sensor status + PAI.
    # Measurement status 0x0200 (b9: from measurement storage) -> 00 02.
    # Device and sensor status 0x000020 (b5: low perfusion) -> 20 00 00.
    # PAI 2.5 % = mantissa 25, exponent -1 -> raw 0xF019 -> 19 F0.
    m = decode_spot_check(H("0F 6100 4800 EA070B18081E05 0002 200000 19F0"))
    assert m.device_time == datetime(2026, 11, 24, 8, 30, 5)
    assert m.flags == {DeviceFlag.FROM_DEVICE_MEMORY, DeviceFlag.LOW_PERFUSION}
    assert m.components["perfusion_index"].value == Decimal("2.5")


def test_spot_check_with_the_device_clock_not_set_has_no_device_time() -> None:
    # flags 0x11: time stamp present, but b4 says the clock was never set (e.g. after a battery change).
    m = decode_spot_check(H("11 6100 4800 B2070101000000"))
    assert m.device_time is None and DeviceFlag.DEVICE_CLOCK_NOT_SET in m.flags


@pytest.mark.parametrize(("status", "reason"), [
    ("0080", "invalid"), ("0020", "unavailable"), ("0004", "demonstration"), ("0008", "testing")])
def test_spot_check_the_device_calls_unusable_is_rejected(status: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_spot_check(H(f"02 6100 4800 {status}"))


def test_spot_check_sensor_off_the_finger_is_rejected_and_poor_signal_is_a_flag() -> None:
    with pytest.raises(DecodeError, match="not on the patient"):
        decode_spot_check(H("04 6100 4800 000800"))  # D&S b11
    assert decode_spot_check(H("04 6100 4800 100000")).flags == {DeviceFlag.POOR_SIGNAL}  # b4
    assert decode_spot_check(H("02 6100 4800 0040")).flags == {DeviceFlag.QUESTIONABLE_MEASUREMENT}  # MS b14


def test_spot_check_nan_saturation_is_a_rejection_never_2047() -> None:
    with pytest.raises(DecodeError, match="NaN"):
        decode_spot_check(H("00 FF07 4800"))


@pytest.mark.parametrize(("pulse", "why"), [("FF07", "NaN"), ("0008", "NRes"), ("FE07", "INFINITY")])
def test_spot_check_saturation_is_kept_when_the_pulse_is_a_special_value(pulse: str, why: str) -> None:
    # SpO2 84 % = 0x0054 -> 54 00, then a pulse the oximeter could not compute; time stamp follows.
    m = decode_spot_check(H(f"01 5400 {pulse} EA070B18081E05"))
    assert m.components["spo2"].value == 84 and "pulse" not in m.components
    assert why in m.absent["pulse"]
    assert m.device_time == datetime(2026, 11, 24, 8, 30, 5)  # the fields after the pulse are still read


def test_continuous_saturation_is_kept_when_the_pulse_is_nan() -> None:
    m = decode_continuous(H("04 5400 FF07 0000"))
    assert m.components["spo2"].value == 84 and set(m.absent) == {"pulse"}


# ---- PLX continuous 0x2A5F and features 0x2A60 --------------------------------------------------

def test_continuous_skips_fast_and_slow_and_reads_status() -> None:
    # flags 0x07: fast + slow + measurement status; normal 96 %/70, fast 95/71, slow 96/70, status b5 (ongoing).
    m = decode_continuous(H("07 6000 4600 5F00 4700 6000 4600 2000"))
    assert (m.components["spo2"].value, m.components["pulse"].value) == (96, 70)
    assert m.flags == {DeviceFlag.PROVISIONAL}


def test_features_with_storage_and_status_support() -> None:
    # 0x0087: measurement status support (b0), D&S support (b1), spot-check storage (b2), multiple bonds (b7).
    f = decode_features(H("8700 E0FF FFFF00"))
    assert f.spot_check_storage and f.multiple_bonds and not f.fast
    assert (f.supported_measurement_status, f.supported_device_sensor_status) == (0xFFE0, 0x00FFFF)


# ---- Weight 0x2A9D / 0x2A9E ---------------------------------------------------------------------

def test_weight_si_worked_example() -> None:
    # device-protocols.md §3.3: 75.3 kg = 15060 steps of 0.005 kg = 0x3AD4 -> 00 D4 3A.
    m = decode_weight(H("00 D43A"))
    assert m.components["weight"].value == Decimal("75.300")


def test_weight_in_pounds_becomes_kilograms() -> None:
    # 166.0 lb = 16600 steps of 0.01 lb = 0x40D8 -> 01 D8 40; 166 x 0.45359237 = 75.2963 kg.
    m = decode_weight(H("01 D840"))
    assert (m.components["weight"].value, m.components["weight"].unit) == (Decimal("75.2963"), "kg")


def test_weight_with_time_user_bmi_height_and_the_scales_resolution() -> None:
    # flags 0x0E; 80.125 kg = 16025 = 0x3E99; user 2; BMI 24.7 = 247 = 0x00F7; height 1.800 m = 1800 = 0x0708.
    m = decode_weight(H("0E 993E EA070B18081E05 02 F700 0807"), resolution_kg=Decimal("0.1"))
    assert m.components["weight"].value == Decimal("80.1")  # the scale's 0.1 kg precision (feature code 3)
    assert (m.user_id, m.components["bmi"].value, m.components["height"].value) == (2, Decimal("24.7"),
                                                                                     Decimal("1.800"))


def test_weight_unknown_user_and_unsuccessful_measurement() -> None:
    assert decode_weight(H("04 D43A FF")).user_id is None
    with pytest.raises(DecodeError, match="unsuccessful"):
        decode_weight(H("00 FFFF"))


def test_weight_scale_feature_resolution() -> None:
    # b0 time stamp, b1 multiple users, b3-6 = 3 (0.1 kg): 0x03 | (3 << 3) = 0x1B.
    f = decode_feature(H("1B000000"))
    assert f.time_stamp and f.multiple_users and f.weight_resolution_kg == Decimal("0.1")


def test_mi_scale_advert_is_reported_only_when_stable() -> None:
    # theengs/openScale layout: status b5 stabilised; weight u16 / 200 kg; 76.2 kg = 15240 = 0x3B88.
    stable = decode_mi_scale_advert(MI_SCALE_SERVICE_DATA, H("22 883B EA07 0B 18 08 1E 05"))
    assert stable is not None and stable.components["weight"].value == Decimal("76.2")
    assert stable.device_time == datetime(2026, 11, 24, 8, 30, 5)
    assert decode_mi_scale_advert(MI_SCALE_SERVICE_DATA, H("02 883B EA07 0B 18 08 1E 05")) is None  # settling
    assert decode_mi_scale_advert(MI_SCALE_SERVICE_DATA, H("A2 883B EA07 0B 18 08 1E 05")) is None  # stepped off


def test_mi_body_composition_advert() -> None:
    # byte1 0x22: impedance present (b1) + stabilised (b5); weight at bytes 11-12.
    m = decode_mi_scale_advert(MI_BODY_COMPOSITION_SERVICE_DATA, H("02 22 EA07 0B 18 08 1E 05 F401 883B"))
    assert m is not None and m.components["weight"].value == Decimal("76.2")


# ---- Temperature 0x2A1C -------------------------------------------------------------------------

def test_temperature_worked_example() -> None:
    # device-protocols.md §3.4: 36.9 °C = mantissa 369, exponent -1 -> 71 01 00 FF.
    m = decode_temperature(H("00 710100FF"))
    assert (m.components["temperature"].value, m.components["temperature"].unit) == (Decimal("36.9"), "Cel")


def test_fahrenheit_becomes_celsius_and_the_site_is_checked() -> None:
    # 98.6 °F = 986 x 10^-1 = 0xFF0003DA -> DA 03 00 FF; flags 0x05 (°F + type); type 6 mouth.
    assert decode_temperature(H("05 DA0300FF 06")).components["temperature"].value == Decimal("37.00")
    with pytest.raises(DecodeError, match="reserved"):
        decode_temperature(H("04 710100FF 0A"))


# ---- Glucose 0x2A18 / 0x2A34 --------------------------------------------------------------------

def test_glucose_in_kg_per_litre() -> None:
    # flags 0x03: time offset + concentration. seq 7; base 2026-11-24 08:30:05; offset +15 min = 0F 00.
    # 108 mg/dL = 0.00108 kg/L = mantissa 108, exponent -5 -> raw 0xB06C -> 6C B0.
    # type 1 (capillary whole blood), location 1 (finger) -> 0x11.
    r = decode_glucose(H("03 0700 EA070B18081E05 0F00 6CB0 11"))
    assert r.sequence == 7
    assert r.measurement.components["glucose"].value == Decimal("5.99")  # 108 / 18.016
    assert r.measurement.device_time == datetime(2026, 11, 24, 8, 45, 5)


def test_glucose_in_mol_per_litre_and_the_context_meal() -> None:
    # flags 0x16: concentration + mol/L + context follows; 6.2 mmol/L = 0.0062 mol/L = 62 x 10^-4 -> 3E C0.
    r = decode_glucose(H("16 0800 EA070B18081E05 3EC0 11"))
    assert r.measurement.components["glucose"].value == Decimal("6.20") and r.context_follows
    assert decode_context(H("02 0800 01")).meal == "before meal"


@pytest.mark.parametrize(("status", "reason"), [("1000", "wrong strip"), ("0002", "strip pulled")])
def test_glucose_sensor_status_rejects_untrustworthy_results(status: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_glucose(H(f"0A 0900 EA070B18081E05 6CB0 11 {status}"))


@pytest.mark.parametrize(("concentration", "status", "flag", "value"), [
    # HI at 600 mg/dL = 0.006 kg/L = 600 x 10^-5 -> raw 0xB258 -> 58 B2; status b5 -> 0x0020 -> 20 00.
    ("58B2", "2000", DeviceFlag.ABOVE_MEASURING_RANGE, Decimal("33.30")),
    # LO at 20 mg/dL = 20 x 10^-5 -> raw 0xB014 -> 14 B0; status b6 -> 0x0040 -> 40 00.
    ("14B0", "4000", DeviceFlag.BELOW_MEASURING_RANGE, Decimal("1.11")),
])
def test_glucose_hi_and_lo_are_measurements_flagged_out_of_range_not_rejections(
    concentration: str, status: str, flag: DeviceFlag, value: Decimal
) -> None:
    m = decode_glucose(H(f"0A 0900 EA070B18081E05 {concentration} 11 {status}")).measurement
    assert m.flags == {flag}
    assert m.components["glucose"].value == value  # the meter's limit; the patient's value is beyond it


def test_glucose_hi_sent_as_infinity_is_flagged_with_the_value_absent() -> None:
    m = decode_glucose(H("0A 0900 EA070B18081E05 FE07 11 2000")).measurement
    assert m.flags == {DeviceFlag.ABOVE_MEASURING_RANGE} and m.components == {}
    assert "(HI)" in m.absent["glucose"] and "INFINITY" in m.absent["glucose"]


def test_glucose_nan_without_hi_or_lo_is_still_a_rejection() -> None:
    with pytest.raises(DecodeError, match="no glucose measured"):
        decode_glucose(H("0A 0900 EA070B18081E05 FF07 11 0000"))


def test_glucose_control_solution_is_not_a_patient_reading() -> None:
    with pytest.raises(DecodeError, match="control-solution"):
        decode_glucose(H("02 0A00 EA070B18081E05 6CB0 4A"))


# ---- Device characteristics ---------------------------------------------------------------------

def test_battery_strings_and_features() -> None:
    assert decode_battery(H("55")) == 85
    with pytest.raises(DecodeError):
        decode_battery(H("65"))
    assert decode_string(b"A&D Medical\x00\x00", "manufacturer") == "A&D Medical"
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_string(b"\xff\xfe", "serial")
    f = decode_blood_pressure_feature(H("2300"))  # b0 body movement, b1 cuff fit, b5 multiple bonds
    assert f.body_movement and f.cuff_fit and f.multiple_bonds and not f.irregular_pulse


def test_current_time_written_to_a_device_uses_monday_one_sunday_seven() -> None:
    # 2026-11-29 is a Sunday: day of week 7 (obniz's UA-1200BLE code writes 0 here, a known bug).
    sunday = encode_current_time(datetime(2026, 11, 29, 8, 0, 0))
    assert sunday == H("EA070B1D080000 07 00 01") and len(sunday) == 10
    assert decode_current_time(sunday) == datetime(2026, 11, 29, 8, 0, 0)
    assert decode_current_time(H("00000000000000 00 00 00")) is None  # the clock was never set
    with pytest.raises(ValueError, match="year 1070"):
        encode_current_time(datetime(1070, 1, 1))


# ---- every decoder, any bytes -------------------------------------------------------------------

@settings(max_examples=3000, deadline=None)
@given(characteristic=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=24))
def test_any_bytes_give_a_measurement_or_the_drivers_own_rejection(characteristic: str, data: bytes) -> None:
    try:
        result = decode(characteristic, data)
    except DecodeError:
        return
    assert isinstance(result, Measurement)
    assert all(q.value == q.value for q in result.components.values())  # no NaN slipped through


@settings(max_examples=1000, deadline=None)
@given(service=st.sampled_from([MI_SCALE_SERVICE_DATA, MI_BODY_COMPOSITION_SERVICE_DATA]), data=st.binary(max_size=16))
def test_any_advert_gives_a_weight_none_or_a_rejection(service: str, data: bytes) -> None:
    try:
        result = decode_mi_scale_advert(service, data)
    except DecodeError:
        return
    assert result is None or result.components["weight"].value > 0


def test_the_dispatch_covers_every_measurement_characteristic() -> None:
    assert set(DECODERS) == {uuids.BLOOD_PRESSURE_MEASUREMENT, uuids.PLX_SPOT_CHECK, uuids.PLX_CONTINUOUS,
                             uuids.WEIGHT_MEASUREMENT, uuids.TEMPERATURE_MEASUREMENT, uuids.GLUCOSE_MEASUREMENT,
                             MI_SCALE_SERVICE_DATA, MI_BODY_COMPOSITION_SERVICE_DATA}
