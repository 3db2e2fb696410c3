"""What a driver hands the gateway: one decoded measurement, in canonical UCUM units."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class MeasurementKind(StrEnum):
    """What was measured; each kind has a fixed set of components (`COMPONENTS`), each in one canonical UCUM unit."""

    BLOOD_PRESSURE = "blood_pressure"
    SPO2 = "spo2"
    BODY_WEIGHT = "body_weight"
    BODY_TEMPERATURE = "body_temperature"
    GLUCOSE = "glucose"


class DeviceFlag(StrEnum):
    """Conditions the device itself reported about a measurement (never inferred by the gateway)."""

    BODY_MOVEMENT = "body_movement"
    CUFF_TOO_LOOSE = "cuff_too_loose"
    IRREGULAR_PULSE = "irregular_pulse"
    PULSE_ABOVE_RANGE = "pulse_above_range"
    PULSE_BELOW_RANGE = "pulse_below_range"
    IMPROPER_POSITION = "improper_position"
    # Pulse oximeters (PLX Measurement Status / Device and Sensor Status)
    QUESTIONABLE_MEASUREMENT = "questionable_measurement"
    POOR_SIGNAL = "poor_signal"
    LOW_PERFUSION = "low_perfusion"
    PROVISIONAL = "provisional"  # measurement ongoing or an early estimate
    FROM_DEVICE_MEMORY = "from_device_memory"
    # Glucose meters: the meter's "HI" / "LO". The value (if the meter sent one) is its limit, and the
    # patient's is beyond it: never a number to trust, always a result to act on at once.
    ABOVE_MEASURING_RANGE = "above_measuring_range"
    BELOW_MEASURING_RANGE = "below_measuring_range"
    # Any device
    DEVICE_CLOCK_NOT_SET = "device_clock_not_set"
    LOW_BATTERY = "low_battery"


class Quantity(BaseModel):
    """One value with its UCUM unit, as an exact Decimal at the device's resolution."""

    model_config = ConfigDict(frozen=True)

    # Decimal keeps the device's resolution (120 vs 120.0), which FHIR wants preserved.
    value: Decimal
    unit: str = Field(description="UCUM unit, one canonical unit per component")


class Measurement(BaseModel):
    """One decoded measurement, before the gateway gives it an identity."""

    model_config = ConfigDict(frozen=True)

    kind: MeasurementKind
    components: dict[str, Quantity]
    device_time: datetime | None = Field(
        default=None, description="the device's own wall-clock time, naive; None when it sent none"
    )
    flags: frozenset[DeviceFlag] = frozenset()
    user_id: int | None = Field(default=None, description="device user slot, when the device sends one")
    absent: dict[str, str] = Field(
        default_factory=dict,
        description="optional components the device sent as a special value: name -> reason",
    )


class DecodeError(ValueError):
    """The bytes do not make a valid measurement; the message says why in words a technician can use."""


class NotFinal(DecodeError):
    """A value the device sends while still measuring (a scale settling): not a rejection, not a reading."""


# The component names each kind may carry; profiles are checked against this so a typo in a
# threshold file cannot silently switch a rule off.
COMPONENTS: dict[MeasurementKind, frozenset[str]] = {
    MeasurementKind.BLOOD_PRESSURE: frozenset({"systolic", "diastolic", "mean", "pulse"}),
    MeasurementKind.SPO2: frozenset({"spo2", "pulse", "perfusion_index"}),
    MeasurementKind.BODY_WEIGHT: frozenset({"weight", "bmi", "height"}),
    MeasurementKind.BODY_TEMPERATURE: frozenset({"temperature"}),
    MeasurementKind.GLUCOSE: frozenset({"glucose"}),
}
