"""Wire protocol v1 payloads. JSON Schemas in docs/schemas/ are generated from these models."""

from __future__ import annotations

import json
import re
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    ValidationError,
    WithJsonSchema,
)

from protocol.signed import ConfigMessage

PROTOCOL_VERSION: Literal[1] = 1


# A JSON number on the wire (FHIR's valueQuantity.value is a number too), exact decimal in memory. The
# payloads are written by `_Wire.model_dump_json` with each decimal's own digits — 128 stays 128, 83.800 kg
# stays 83.800, 0.005 kg steps are not binary fractions — and read back exactly by
# `_Wire.model_validate_json`. pydantic writes a Decimal only as a string or through a float, so the
# serializer marks the digits in a string that no payload can contain (a NUL and a per-process nonce) and
# `model_dump_json` unquotes them. Anywhere else (a wire model inside some other model) it is a float.
_EXACT = "exact-" + secrets.token_hex(8)
_EXACT_QUOTED = re.compile(r'"\\u0000' + _EXACT + r':([-+.0-9Ee]+)"')


def _wire_number(value: Decimal, info: SerializationInfo) -> float | str:
    if info.context == _EXACT:
        return f"\x00{_EXACT}:{value}"  # Decimal's text is JSON number syntax: 128, 83.800, 1E+3
    return float(value)


WireDecimal = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    PlainSerializer(_wire_number, return_type=Any, when_used="json"),
    WithJsonSchema({"type": "number"}, mode="serialization"),
]
# device_unverified: the device's own stamp, kept because its clock's offset (read at connection) cannot
# apply to it (stamped before a clock reset); undated: no plausible time, `effective` is the receive time.
TimeSource = Literal["device_synced", "device_unsynced", "gateway_receive", "device_unverified", "undated"]
WireZone = Literal["green", "yellow", "red", "unassessed"]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_dump_json(self, **options: Any) -> str:
        """The payload as sent, decimals written with their own digits."""
        return _EXACT_QUOTED.sub(r"\1", super().model_dump_json(context=_EXACT, **options))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        """Parse with every non-integer number as an exact Decimal.

        Pydantic's own JSON parser goes through a binary float: 83.800 would come back as 83.8, and long
        values rounded.
        """
        try:
            data = json.loads(json_data, parse_float=Decimal)
        except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ValidationError.from_exception_data(cls.__name__, [
                {"type": "json_invalid", "loc": (), "input": json_data, "ctx": {"error": str(exc)}}]) from None
        return cls.model_validate(data, **options)


class WireQuantity(_Wire):
    """One measured value: an exact decimal in the kind's one UCUM unit."""

    value: WireDecimal = Field(description="exact decimal with the device's resolution (128, 83.800, 36.95): "
                               "read it as a decimal, not a binary float")
    unit: str = Field(description="UCUM unit: %, /min, mm[Hg], kg, Cel, mmol/L")


class WireDevice(_Wire):
    """The device a reading came from, as the gateway knows it; `battery` in percent."""

    id: str = Field(description="stable device identity (serial or provisioned address)")
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    battery: int | None = Field(default=None, ge=0, le=100, description="percent")


class WireFiredRule(_Wire):
    """A rule that fired: `value` of `component` `op` `limit` put the reading in `zone`."""

    rule: str
    component: str
    value: WireDecimal
    op: Literal["<", "<=", ">", ">="]
    limit: WireDecimal
    zone: WireZone


class WireAssessment(_Wire):
    """How the gateway judged a reading: the zone, the rules that fired, the advice shown, the plan in force."""

    zone: WireZone
    rules: list[WireFiredRule] = Field(description="every rule that fired, with the value that fired it")
    advice: list[str] = Field(description="self-care advice keys shown to the patient")
    profile: str = Field(description="the standard profile the rules start from")
    profile_version: int
    # Optional only so records sealed before these fields existed still validate; every new reading has them.
    rules_hash: str | None = Field(default=None, description="hash of the effective rules the reading was judged by")
    plan_version: int | None = Field(default=None, description="the signed plan in force; null on the standard profile")
    plan_hash: str | None = Field(default=None, description="hash of the signed plan in force")
    next_due: date | None = Field(default=None, description="local date the next measurement is due")
    control: list[str] = Field(
        default_factory=list, description="why the patient was asked to measure again at once (control measurement)"
    )
    repeat_of: UUID | None = Field(default=None, description="the reading this one repeats as a control")
    notes: list[str] = Field(
        default_factory=list,
        description="how a rule had to judge: a trend compared across missed days, or one that could not judge",
    )


class WireReading(_Wire):
    """One reading as the gateway stored it: identity, values, times, device and its assessment.

    `id` is the same on every re-send, so the central service stores it once. Times are UTC;
    `device_time` is the device's own clock as sent and `clock_correction_s` what was added to it.
    """

    id: UUID = Field(description="UUIDv7, stable across re-sends and re-fetches from the device")
    patient: str = Field(description="pseudonymous patient id from provisioning, never a national id")
    type: Literal["spo2", "blood_pressure", "body_weight", "body_temperature", "glucose", "questionnaire"]
    components: dict[str, WireQuantity] = Field(description="measured values; empty for a questionnaire")
    answers: dict[str, str] = Field(
        default_factory=dict, description="questionnaire only: question -> the answer the patient chose"
    )
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
    """Readings published together on `up/readings`; `batch` names the message, not the readings."""

    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    batch: UUID
    sent: AwareDatetime
    readings: list[WireReading] = Field(min_length=1)


# Why the central service will not store a message (docs/protocol.md, "Refusals", protocol 1.1).
RefusalCode = Literal[
    "unknown_gateway",  # no such gateway in the central registry (never registered, removed, a new kit)
    "wrong_tenant",  # the topic names another tenant than the one the gateway is registered under
    "patient_not_registered",  # a reading's patient pseudonym is not the one registered for the gateway
    "wrong_gateway",  # the payload names another gateway than the topic it came on
    "invalid_payload",  # not a valid v1 message
    "too_large",  # over the central's size limit
    "cannot_map",  # valid, but the central cannot map a reading (e.g. a type it does not know yet)
    "not_stored",  # the central's database refused it
]


class Refusal(_Wire):
    """One message the central service refused, and why: the gateway keeps what it names and backs off."""

    code: RefusalCode
    detail: str = Field(max_length=300, description="one short line for a technician; never a patient pseudonym")
    topic: Literal["readings", "events", "status"] | None = Field(
        default=None, description="the upstream topic the refused message came on"
    )
    ids: list[UUID] = Field(
        default_factory=list, description="the refused readings or events, when the payload could be read"
    )


class Ack(_Wire):
    """The central service's answer on `down/ack`: these ids are durably stored, the gateway may delete them.

    Since protocol 1.1 it may also carry `refused`: messages the central will not store, with a reason
    code (an ack of refusals only has no `ids`). An ack without refusals is the same as in 1.0.
    """

    v: Literal[1] = PROTOCOL_VERSION
    ids: list[UUID] = Field(description="readings and events the central service has durably stored")
    refused: list[Refusal] = Field(
        default_factory=list, description="protocol 1.1: messages refused, with why; keep their readings"
    )

    def wire_json(self) -> str:
        """The payload as sent: without `refused` when there is none, so a 1.0 gateway reads it as before."""
        return self.model_dump_json(exclude={"refused"} if not self.refused else None)


class DeviceStatus(_Wire):
    """One provisioned device in a gateway's status: battery in percent, when last heard, whether to pair again."""

    id: str = Field(description="serial number, or the provisioned address")
    kind: str
    battery: int | None = Field(default=None, ge=0, le=100, description="percent, as last read")
    last_seen: AwareDatetime | None = Field(default=None, description="last advertisement heard")
    needs_pairing: bool = Field(default=False, description="its bond failed: put it in pairing mode")


class Status(_Wire):
    """The gateway's health, retained on `up/status`: outbox, faults, devices, the plan in force.

    The same model is its MQTT Last Will (`state` offline, `last_will` true), which the broker
    publishes when the connection is lost.
    """

    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    state: Literal["online", "offline"]
    version: str | None = None
    outbox_depth: int | None = None
    outbox_used_percent: int | None = Field(default=None, description="of the configured outbox size bound")
    outbox_oldest_s: float | None = Field(
        default=None, ge=0, description="how long the oldest reading has waited for the central ack, seconds at `at`"
    )
    quarantined: int | None = Field(default=None, description="stored records that failed authentication")
    faults: list[str] = Field(default_factory=list, description="conditions a technician must look at, e.g. disk full")
    devices: list[DeviceStatus] = Field(default_factory=list, description="the provisioned BLE devices")
    profile: str | None = Field(default=None, description="the standard profile the rules in force start from")
    rules_hash: str | None = Field(default=None, description="hash of the effective rules in force")
    plan_version: int | None = Field(default=None, description="the signed plan in force; null on the standard profile")
    plan_hash: str | None = Field(default=None, description="hash of the signed plan in force")
    rejected: int | None = Field(
        default=None, description="values from the patient's devices not taken since start (unreadable, wrong kind)"
    )
    unassigned: int | None = Field(
        default=None, description="readings from a shared device not known to be the patient's, since start"
    )
    at: AwareDatetime | None = Field(
        default=None, description="when the gateway composed this status; for the Last Will: when the "
        "connection it covers opened (the broker publishes it later, when the connection is lost)",
    )
    last_will: bool = Field(default=False, description="published by the broker: the connection was lost")


EventKind = Literal[
    "outbox_record_quarantined",  # a stored record failed authentication; the others still go
    "outbox_near_limit",  # the outbox passed its alert level: readings are not reaching the central service
    "outbox_below_limit",
    "storage_fault",  # readings cannot be stored (disk full, outbox at its bound, I/O error)
    "storage_recovered",
    "measurement_overdue",  # the schedule's next measurement is past due (no values, only dates)
    "plan_applied",  # a signed plan passed every check, was stored and is in force (version, hash, signers' keys)
    "plan_rejected",  # a down/config message was refused; the plan in force stays (reason)
    "trust_store_updated",  # a newer root-signed trust store replaced the old one (keys left out are revoked)
    "reading_time_uncertain",  # a device's clock cannot date its records (reset, far off): check the device
    "glucose_out_of_range",  # urgent: a glucose meter read HI or LO (beyond what it can measure); reading id only
    "refused_by_central",  # protocol 1.1: the central refuses what the gateway sends (code, detail); readings kept
    "refusal_cleared",  # the central acknowledges again after a refusal
    "kit_check",  # `kit check`'s probe: the central's ack of it proves the path to the central's store
]


class Event(_Wire):
    """Something a technician or nurse should hear of. Never carries patient data or reading values."""

    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    id: UUID
    kind: EventKind
    at: AwareDatetime
    detail: dict[str, str | int | float] = Field(default_factory=dict)


class WireProposedBound(_Wire):
    """One proposed threshold of a baseline: `op` `limit` puts a reading in `zone`, next to the standard's."""

    zone: WireZone
    op: Literal["<=", ">="]
    limit: WireDecimal
    standard_limit: WireDecimal | None = Field(description="the standard profile's bound for the same zone")
    clamped: bool = Field(description="the offset would have been more permissive than the standard red bound")


class WireBaselineComponent(_Wire):
    """The baseline of one component over the period: median, quartiles and the bounds proposed from them."""

    type: str = Field(description="measurement type, as in a Reading")
    component: str
    days: int = Field(description="days with a usable reading in the period")
    readings: int
    median: WireDecimal
    iqr: tuple[WireDecimal, WireDecimal] | None = Field(description="lower and upper quartile")
    proposal: list[WireProposedBound]
    method: str = Field(description="how the bounds were derived, with the source")


class BaselineProposal(_Wire):
    """The 14-day baseline the box computed.

    A proposal for the clinician to turn into an order, never applied by the box itself (docs/zoning.md,
    "Baseline proposal").
    """

    v: Literal[1] = PROTOCOL_VERSION
    gateway: str
    patient: str = Field(description="pseudonymous patient id, as in a Reading")
    computed: AwareDatetime
    period: tuple[date, date] = Field(description="first and last local day looked at")
    profile: str = Field(description="the standard profile compared against")
    profile_version: int
    rules_hash: str = Field(description="the rules in force when it was computed")
    plan_version: int | None = None
    components: list[WireBaselineComponent]
    insufficient: list[str] = Field(description="parameters without enough days, with why")


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "reading-batch": ReadingBatch,
    "ack": Ack,
    "status": Status,
    "event": Event,
    "baseline-proposal": BaselineProposal,
    "config": ConfigMessage,
}
