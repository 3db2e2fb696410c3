"""Wire protocol v1 payloads. JSON Schemas in docs/schemas/ are generated from these models."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

PROTOCOL_VERSION: Literal[1] = 1

# A JSON number on the wire (FHIR's valueQuantity.value is a number too), exact decimal in memory.
WireDecimal = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
TimeSource = Literal["device_synced", "device_unsynced", "gateway_receive"]
WireZone = Literal["green", "yellow", "red", "unassessed"]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WireQuantity(_Wire):
    value: WireDecimal
    unit: str = Field(description="UCUM unit: %, /min, mm[Hg], kg, Cel, mmol/L")


class WireDevice(_Wire):
    id: str = Field(description="stable device identity (serial or provisioned address)")
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    battery: int | None = Field(default=None, ge=0, le=100, description="percent")


class WireFiredRule(_Wire):
    rule: str
    component: str
    value: WireDecimal
    op: Literal["<", "<=", ">", ">="]
    limit: WireDecimal
    zone: WireZone


class WireAssessment(_Wire):
    zone: WireZone
    rules: list[WireFiredRule] = Field(description="every rule that fired, with the value that fired it")
    advice: list[str] = Field(description="self-care advice keys shown to the patient")
    profile: str = Field(description="the plan (or standard profile) the reading was judged by")
    profile_version: int
    next_due: date | None = Field(default=None, description="local date the next measurement is due")
    control: list[str] = Field(
        default_factory=list, description="why the patient was asked to measure again at once (control measurement)"
    )
    repeat_of: UUID | None = Field(default=None, description="the reading this one repeats as a control")


class WireReading(_Wire):
    id: UUID = Field(description="UUIDv7, stable across re-sends and re-fetches from the device")
    patient: str = Field(description="pseudonymous patient id from provisioning, never a national id")
    type: Literal["spo2", "blood_pressure", "body_weight", "body_temperature", "glucose"]
    components: dict[str, WireQuantity]
    effective: AwareDatetime = Field(description="corrected measurement time, UTC")
    time_source: TimeSource
    device_time: datetime | None = Field(
        default=None, description="the device's own wall-clock time as sent (no zone); null if none"
    )
    clock_correction_s: float | None = Field(
        default=None, description="seconds added to the device time to get `effective`"
    )
    device: WireDevice
    flags: list[str] = Field(default_factory=list, description="device-reported conditions")
    absent: dict[str, str] = Field(
        default_factory=dict, description="components the device sent as a special value, with why"
    )
    assessment: WireAssessment
    received: AwareDatetime = Field(description="gateway receive time, UTC")


class ReadingBatch(_Wire):
    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    batch: UUID
    sent: AwareDatetime
    readings: list[WireReading] = Field(min_length=1)


class Ack(_Wire):
    v: Literal[1] = PROTOCOL_VERSION
    ids: list[UUID] = Field(description="readings and events the central service has durably stored")


class DeviceStatus(_Wire):
    id: str = Field(description="serial number, or the provisioned address")
    kind: str
    battery: int | None = Field(default=None, ge=0, le=100, description="percent, as last read")
    last_seen: AwareDatetime | None = Field(default=None, description="last advertisement heard")
    needs_pairing: bool = Field(default=False, description="its bond failed: put it in pairing mode")


class Status(_Wire):
    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    state: Literal["online", "offline"]
    version: str | None = None
    outbox_depth: int | None = None
    outbox_used_percent: int | None = Field(default=None, description="of the configured outbox size bound")
    quarantined: int | None = Field(default=None, description="stored records that failed authentication")
    faults: list[str] = Field(default_factory=list, description="conditions a technician must look at, e.g. disk full")
    devices: list[DeviceStatus] = Field(default_factory=list, description="the provisioned BLE devices")
    at: AwareDatetime | None = None


EventKind = Literal[
    "outbox_record_quarantined",  # a stored record failed authentication; the others still go
    "outbox_near_limit",  # the outbox passed its alert level: readings are not reaching the central service
    "outbox_below_limit",
    "storage_fault",  # readings cannot be stored (disk full, outbox at its bound, I/O error)
    "storage_recovered",
    "measurement_overdue",  # the schedule's next measurement is past due (no values, only dates)
]


class Event(_Wire):
    """Something a technician or nurse should hear of. Never carries patient data or reading values."""

    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    id: UUID
    kind: EventKind
    at: AwareDatetime
    detail: dict[str, str | int | float] = Field(default_factory=dict)


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "reading-batch": ReadingBatch,
    "ack": Ack,
    "status": Status,
    "event": Event,
}
