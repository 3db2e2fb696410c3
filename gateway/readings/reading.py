"""A measurement with an identity: who, which device, when (corrected), and its wire form."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from drivers.measurement import Measurement
from protocol import TimeSource, WireAssessment, WireDevice, WireFiredRule, WireQuantity, WireReading
from zoning import Assessment


class DeviceRef(BaseModel):
    """The provisioned device a reading came from: its address, model, serial, firmware and battery (percent).

    `id` is the serial when known (it survives address rotation and re-pairing), else the address.
    """

    model_config = ConfigDict(frozen=True)

    address: str
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    battery: int | None = None

    @property
    def id(self) -> str:
        # A serial survives address rotation and re-pairing; the address is the fallback.
        return self.serial or self.address


class Reading(BaseModel):
    """One measurement with its identity: a UUIDv7 id, the patient pseudonym, the device, and its time.

    `effective` is the corrected measurement time (UTC, never later than `received`); `time_source`
    says how far it can be trusted and `clock_correction_s` how much the device clock was corrected.
    """

    model_config = ConfigDict(frozen=True)

    id: UUID
    patient: str
    device: DeviceRef
    measurement: Measurement
    effective: datetime
    time_source: TimeSource
    clock_correction_s: float | None
    received: datetime


def to_wire(reading: Reading, assessment: Assessment) -> WireReading:
    """The reading and its assessment as the wire protocol carries them (docs/protocol.md)."""

    m = reading.measurement
    return WireReading(
        id=reading.id,
        patient=reading.patient,
        type=m.kind.value,
        components={name: WireQuantity(value=q.value, unit=q.unit) for name, q in m.components.items()},
        effective=reading.effective,
        time_source=reading.time_source,
        device_time=m.device_time,
        clock_correction_s=reading.clock_correction_s,
        device=WireDevice(
            id=reading.device.id,
            model=reading.device.model,
            serial=reading.device.serial,
            firmware=reading.device.firmware,
            battery=reading.device.battery,
        ),
        flags=sorted(flag.value for flag in m.flags),
        absent=dict(m.absent),
        assessment=WireAssessment(
            zone=assessment.zone.value,
            rules=[
                WireFiredRule(
                    rule=f.rule, component=f.component, value=f.value, op=f.op, limit=f.limit,
                    zone=f.zone.value,
                )
                for f in assessment.fired
            ],
            advice=list(assessment.advice_keys),
            profile=assessment.profile,
            profile_version=assessment.profile_version,
            rules_hash=assessment.rules_hash,
            plan_version=assessment.plan_version,
            plan_hash=assessment.plan_hash,
            next_due=assessment.next_due,
            control=list(assessment.control),
            repeat_of=UUID(assessment.repeat_of) if assessment.repeat_of else None,
            notes=list(assessment.notes),
        ),
        received=reading.received,
    )
