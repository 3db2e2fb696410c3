"""Pulse Oximeter Service: PLX Spot-check (0x2A5E), PLX Continuous (0x2A5F), PLX Features (0x2A60).

Layouts from the GATT XML (2015) cross-checked with SpeziBluetooth (shared/reference/device-protocols.md
§3.2). Status bits decide whether a value may be used at all: a measurement the device itself calls
invalid, unavailable, for demonstration or testing, or taken with the sensor off the patient is a
rejection, never a number; a questionable one or a poor signal is a flag that asks for a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.fields import Fields
from drivers.ieee11073 import SpecialValue
from drivers.measurement import DecodeError, DeviceFlag, Measurement, MeasurementKind, Quantity

PERCENT = "%"
PER_MINUTE = "/min"

# Measurement Status (16 bits)
_MS_REJECT = {
    1 << 10: "the device marks it as data for demonstration",
    1 << 11: "the device marks it as data for testing",
    1 << 12: "calibration was ongoing",
    1 << 13: "the device reports the measurement unavailable",
    1 << 15: "the device reports the measurement invalid",
}
_MS_FLAGS = {
    1 << 5: DeviceFlag.PROVISIONAL,  # measurement ongoing
    1 << 6: DeviceFlag.PROVISIONAL,  # early estimated data
    1 << 9: DeviceFlag.FROM_DEVICE_MEMORY,
    1 << 14: DeviceFlag.QUESTIONABLE_MEASUREMENT,
}
# Device and Sensor Status (24 bits)
_DSS_REJECT = {
    1 << 1: "equipment malfunction",
    1 << 11: "the sensor is not on the patient",
    1 << 12: "an unknown sensor is connected",
    1 << 13: "the sensor is displaced",
    1 << 14: "the sensor is malfunctioning",
    1 << 15: "the sensor is disconnected",
}
_DSS_FLAGS = {
    1 << 2: DeviceFlag.POOR_SIGNAL,  # signal processing irregularity
    1 << 3: DeviceFlag.POOR_SIGNAL,  # inadequate signal
    1 << 4: DeviceFlag.POOR_SIGNAL,
    1 << 5: DeviceFlag.LOW_PERFUSION,
    1 << 6: DeviceFlag.POOR_SIGNAL,  # erratic signal
    1 << 7: DeviceFlag.POOR_SIGNAL,  # non-pulsatile signal
    1 << 8: DeviceFlag.POOR_SIGNAL,  # questionable pulse
    1 << 10: DeviceFlag.POOR_SIGNAL,  # sensor interference
}


def _status(value: int, reject: dict[int, str], flags: dict[int, DeviceFlag], what: str) -> set[DeviceFlag]:
    for bit, reason in reject.items():
        if value & bit:
            raise DecodeError(f"{what}: not used: {reason}")
    return {flag for bit, flag in flags.items() if value & bit}


def _spo2_pr(f: Fields, what: str, which: str) -> tuple[dict[str, Quantity], dict[str, str]]:
    """SpO2 and pulse rate.

    Without a saturation there is no reading; a pulse the device could not compute (NaN and the other special
    values) is marked absent and the saturation kept, as blood pressure does with the mean: an SpO2 of 84 %
    must reach the nurse whatever the pulse field holds.
    """
    try:
        spo2 = f.sfloat(f"SpO2 ({which})")
    except SpecialValue as exc:
        raise DecodeError(f"no saturation measured: {exc}") from exc
    if not 0 <= spo2 <= 100:
        raise DecodeError(f"{what}: SpO2 {spo2} % is not a percentage")
    components = {"spo2": Quantity(value=spo2, unit=PERCENT)}
    absent: dict[str, str] = {}
    try:
        components["pulse"] = Quantity(value=f.sfloat(f"pulse rate ({which})"), unit=PER_MINUTE)
    except SpecialValue as exc:
        absent["pulse"] = str(exc)
    return components, absent


def _tail(f: Fields, flags: int, bits: tuple[int, int, int], what: str) -> tuple[set[DeviceFlag], Quantity | None]:
    """Measurement Status, Device and Sensor Status, Pulse Amplitude Index, as `bits` say they follow."""
    found: set[DeviceFlag] = set()
    if flags & bits[0]:
        found |= _status(f.uint(2, "measurement status"), _MS_REJECT, _MS_FLAGS, what)
    if flags & bits[1]:
        found |= _status(f.uint(3, "device and sensor status"), _DSS_REJECT, _DSS_FLAGS, what)
    pai = None
    if flags & bits[2]:
        try:
            pai = Quantity(value=f.sfloat("pulse amplitude index"), unit=PERCENT)
        except SpecialValue:
            pai = None  # optional, and often NaN on cheap sensors
    return found, pai


def decode_spot_check(data: bytes) -> Measurement:
    """A PLX Spot-check Measurement (0x2A5E): SpO2 in %, pulse in /min, perfusion index, device flags.

    A pulse the device could not compute is absent, the SpO2 kept; the time stamp is dropped (and
    `DEVICE_CLOCK_NOT_SET` flagged) when the device says its clock was never set. `DecodeError` when
    there is no SpO2.
    """
    what = "PLX spot-check"
    f = Fields(data, what)
    flags = f.uint(1, "flags")
    components, absent = _spo2_pr(f, what, "spot-check")
    device_time = f.date_time() if flags & 0x01 else None
    found, pai = _tail(f, flags, (0x02, 0x04, 0x08), what)
    if pai is not None:
        components["perfusion_index"] = pai
    if flags & 0x10:
        # The time stamp of a device whose clock was never set means nothing: use the receive time.
        device_time = None
        found.add(DeviceFlag.DEVICE_CLOCK_NOT_SET)
    return Measurement(kind=MeasurementKind.SPO2, components=components, device_time=device_time,
                       flags=frozenset(found), absent=absent)


def decode_continuous(data: bytes) -> Measurement:
    """The Normal SpO2/PR pair; Fast and Slow averages are skipped. No time stamp: receive time applies."""
    what = "PLX continuous"
    f = Fields(data, what)
    flags = f.uint(1, "flags")
    components, absent = _spo2_pr(f, what, "normal")
    for bit, name in ((0x01, "fast"), (0x02, "slow")):
        if flags & bit:
            f.uint(4, f"SpO2/PR {name}")
    found, pai = _tail(f, flags, (0x04, 0x08, 0x10), what)
    if pai is not None:
        components["perfusion_index"] = pai
    return Measurement(kind=MeasurementKind.SPO2, components=components, flags=frozenset(found), absent=absent)


@dataclass(frozen=True)
class PlxFeatures:
    """What a pulse oximeter says it supports (PLX Features, 0x2A60), one flag per supported-features bit."""

    measurement_status: bool
    device_sensor_status: bool
    spot_check_storage: bool  # stored spot-checks can be fetched through the RACP
    spot_check_time_stamp: bool
    fast: bool
    slow: bool
    pulse_amplitude_index: bool
    multiple_bonds: bool
    supported_measurement_status: int = 0
    supported_device_sensor_status: int = 0


def decode_features(data: bytes) -> PlxFeatures:
    """PLX Features (0x2A60), skipping the optional status-support fields; `DecodeError` if cut off."""
    f = Fields(data, "PLX features")
    bits = f.uint(2, "supported features")
    ms = f.uint(2, "measurement status support") if bits & 0x01 else 0
    dss = f.uint(3, "device and sensor status support") if bits & 0x02 else 0
    return PlxFeatures(
        measurement_status=bool(bits & 0x01), device_sensor_status=bool(bits & 0x02),
        spot_check_storage=bool(bits & 0x04), spot_check_time_stamp=bool(bits & 0x08), fast=bool(bits & 0x10),
        slow=bool(bits & 0x20), pulse_amplitude_index=bool(bits & 0x40), multiple_bonds=bool(bits & 0x80),
        supported_measurement_status=ms, supported_device_sensor_status=dss,
    )
