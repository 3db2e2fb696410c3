"""What one upstream message means, or why it is refused. Pure: topic, payload and the registry in,
a decision out. Tenancy comes from the registry (the gateway's provisioned identity), never from the
topic alone: a topic naming another tenant, an unknown gateway or another patient is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from central.store import RegisteredGateway
from protocol import Event, ReadingBatch, RefusalCode, Status, parse_up_topic

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
    """A message the central will not store: the code and detail answered on the gateway's ack topic
    (protocol 1.1), and the ids of the readings or events in it where the payload could be read."""

    reason: str
    code: RefusalCode = "invalid_payload"
    ids: tuple[UUID, ...] = ()


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


def ids_in(what: str, payload: bytes) -> tuple[UUID, ...]:
    """The reading or event ids a refused payload names, read leniently (it was not validated); () if none."""
    try:
        data = json.loads(payload)
        found: list[Any] = ([r.get("id") for r in data.get("readings", [])] if what == "readings"
                            else [data.get("id")] if what == "events" else [])
        return tuple(UUID(str(i)) for i in found if i is not None)
    except (ValueError, TypeError, AttributeError):
        return ()


def _refused(code: RefusalCode, reason: str, what: str, payload: bytes) -> Refused:
    return Refused(reason, code, ids_in(what, payload) if len(payload) <= MAX_PAYLOAD_BYTES else ())


def decide(topic: str, payload: bytes, registry: dict[str, RegisteredGateway]) -> Decision:
    """What one upstream message is (readings, a status, an event) for its registered gateway, or why it
    is `Refused` with a reason code (protocol 1.1): a topic naming another tenant, an unknown gateway,
    another patient, an oversized or invalid payload. Pure."""
    try:
        tenant, gateway_id, what = parse_up_topic(topic)
    except ValueError as exc:
        return Refused(str(exc))
    known = registry.get(gateway_id)
    if known is None:
        return _refused("unknown_gateway", f"unknown gateway {gateway_id!r}: not registered at the central "
                        "service (dho-central gateways register)", what, payload)
    if known.tenant != tenant:
        return _refused("wrong_tenant", f"gateway {gateway_id!r} belongs to tenant {known.tenant!r}, not {tenant!r}",
                        what, payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Refused(f"payload of {len(payload):,} bytes is over the {MAX_PAYLOAD_BYTES:,}-byte limit", "too_large")
    try:
        return _decide_payload(known, what, payload)
    except ValidationError as exc:
        return _refused("invalid_payload", f"invalid {what}: {_short(exc)}", what, payload)
    except (ValueError, json.JSONDecodeError) as exc:
        return _refused("invalid_payload", f"invalid {what}: {exc}", what, payload)


def _decide_payload(known: RegisteredGateway, what: str, payload: bytes) -> Decision:
    gateway_id = known.id
    if what == "readings":
        batch = ReadingBatch.model_validate_json(payload)
        ids = tuple(r.id for r in batch.readings)
        if batch.gateway != gateway_id:
            return Refused(f"batch says gateway {batch.gateway!r} but came on {gateway_id!r}'s topic",
                           "wrong_gateway", ids)
        others = {r.patient for r in batch.readings} - {known.patient}
        if others:
            return Refused(f"{len(others)} patient pseudonym(s) in the batch are not the one "
                           f"provisioned for {gateway_id!r}: register the kit's patient (dho-central gateways "
                           "register)", "patient_not_registered", ids)
        return Readings(known, batch)
    if what == "status":
        status = Status.model_validate_json(payload)
        if status.gateway != gateway_id:
            return Refused(f"status says gateway {status.gateway!r} but came on {gateway_id!r}'s topic",
                           "wrong_gateway")
        return StatusReport(known, status)
    if what == "events":
        event = Event.model_validate_json(payload)
        if event.gateway != gateway_id:
            return Refused(f"event says gateway {event.gateway!r} but came on {gateway_id!r}'s topic",
                           "wrong_gateway", (event.id,))
        return EventReport(known, event)
    return Refused(f"unknown upstream topic kind {what!r}")
