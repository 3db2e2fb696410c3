"""What one upstream message means, or why it is refused. Pure: topic, payload and the registry in,
a decision out. Tenancy comes from the registry (the gateway's provisioned identity), never from the
topic alone: a topic naming another tenant, an unknown gateway or another patient is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from central.store import RegisteredGateway
from protocol import Event, ReadingBatch, Status, parse_up_topic

# A batch of 50 readings is ~60 kB; anything near a megabyte is not a gateway speaking v1.
MAX_PAYLOAD_BYTES = 1_000_000


@dataclass(frozen=True)
class Readings:
    gateway: RegisteredGateway
    batch: ReadingBatch


@dataclass(frozen=True)
class StatusReport:
    gateway: RegisteredGateway
    status: Status


@dataclass(frozen=True)
class EventReport:
    gateway: RegisteredGateway
    event: Event


@dataclass(frozen=True)
class Refused:
    reason: str


Decision = Readings | StatusReport | EventReport | Refused


def gateway_of(topic: str) -> str | None:
    try:
        return parse_up_topic(topic)[1]
    except ValueError:
        return None


def _short(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{exc.error_count()} validation error(s), first at {where or 'top level'}: {first['msg']}"


def decide(topic: str, payload: bytes, registry: dict[str, RegisteredGateway]) -> Decision:
    """What one upstream message is (readings, a status, an event) for its registered gateway, or why it
    is `Refused`: a topic naming another tenant, an unknown gateway, another patient, an oversized or
    invalid payload. Pure."""
    try:
        tenant, gateway_id, what = parse_up_topic(topic)
    except ValueError as exc:
        return Refused(str(exc))
    known = registry.get(gateway_id)
    if known is None:
        return Refused(f"unknown gateway {gateway_id!r}: not provisioned")
    if known.tenant != tenant:
        return Refused(f"gateway {gateway_id!r} belongs to tenant {known.tenant!r}, not {tenant!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Refused(f"payload of {len(payload):,} bytes is over the {MAX_PAYLOAD_BYTES:,}-byte limit")
    try:
        if what == "readings":
            batch = ReadingBatch.model_validate_json(payload)
            if batch.gateway != gateway_id:
                return Refused(f"batch says gateway {batch.gateway!r} but came on {gateway_id!r}'s topic")
            others = {r.patient for r in batch.readings} - {known.patient}
            if others:
                return Refused(f"{len(others)} patient pseudonym(s) in the batch are not the one "
                               f"provisioned for {gateway_id!r}")
            return Readings(known, batch)
        if what == "status":
            status = Status.model_validate_json(payload)
            if status.gateway != gateway_id:
                return Refused(f"status says gateway {status.gateway!r} but came on {gateway_id!r}'s topic")
            return StatusReport(known, status)
        if what == "events":
            event = Event.model_validate_json(payload)
            if event.gateway != gateway_id:
                return Refused(f"event says gateway {event.gateway!r} but came on {gateway_id!r}'s topic")
            return EventReport(known, event)
    except ValidationError as exc:
        return Refused(f"invalid {what}: {_short(exc)}")
    except (ValueError, json.JSONDecodeError) as exc:
        return Refused(f"invalid {what}: {exc}")
    return Refused(f"unknown upstream topic kind {what!r}")
