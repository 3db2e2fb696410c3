"""One ingest worker: a member of the consumer group. Stateless; any number run at once.

It takes upstream messages from an MQTT 5 shared subscription (`$share/<group>/dho/v1/+/+/up/...`) on a
persistent session (clean start off, a session expiry), so messages published while every worker is
down wait in the broker. For each batch of messages it decides (validate, tenancy from the registry),
commits everything to the database in one transaction, then acks: the application ack to each gateway
(`down/ack`), then the MQTT PUBACK to the broker. A worker killed before its commit acked nothing:
the broker delivers those messages again, and a reading stored before is acked again, not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import sqlalchemy as sa
from paho.mqtt import client as mqtt_client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.fhir import device_id, device_resource, gateway_device_id, gateway_resource, observations, resource_json
from central.ingest.validate import EventReport, Readings, Refused, StatusReport, decide, gateway_of, ids_in
from central.store import (
    Changes,
    Database,
    GatewayState,
    NewDevice,
    NewEvent,
    NewObservation,
    NewReading,
    NewRejection,
    RegisteredGateway,
    transient,
)
from protocol import (
    OPERATION_TIMEOUT_S,
    PREFIX,
    Ack,
    Backoff,
    BrokerSettings,
    PublishRefused,
    Refusal,
    Topics,
    parse_up_topic,
    publish,
    subscribe,
)

log = logging.getLogger(__name__)

UPSTREAM = ("readings", "status", "events")
_REGISTRY_TTL_S = 30.0
_UNKNOWN_TTL_S = 2.0
_RECONNECT_FIRST_S, _RECONNECT_MAX_S = 0.2, 2.0  # jittered: N workers must not reconnect in lockstep
_COMMIT_RETRY_FIRST_S, _COMMIT_RETRY_MAX_S = 0.2, 5.0  # exact pauses, as they have always been


def subscriptions(group: str | None) -> list[str]:
    """The worker's topic filters: shared by the group, or plain (MQTT 3.1.1 brokers, e.g. the demo's)."""
    filters = [f"{PREFIX}/+/+/up/{what}" for what in UPSTREAM]
    return [f"$share/{group}/{f}" for f in filters] if group else filters


_RECHECK_AFTER_S = 1.0  # a refusal by a registry entry older than this asks the database again first
_REGISTRY_CODES = {"unknown_gateway", "wrong_tenant", "patient_not_registered"}


@dataclass
class _Cached:
    gateway: RegisteredGateway | None
    until: float
    fetched: float = 0.0


class Registry:
    """The provisioned gateways, read from the database and kept briefly (a worker is stateless: the
    database is the truth, this only spares a query per message)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._cache: dict[str, _Cached] = {}

    async def lookup(self, ids: Iterable[str]) -> dict[str, RegisteredGateway]:
        now = time.monotonic()
        wanted = set(ids)
        missing = [i for i in wanted if i not in self._cache or self._cache[i].until < now]
        if missing:
            found = await asyncio.to_thread(self._database.registered, missing)
            for gateway in missing:
                known = found.get(gateway)
                self._cache[gateway] = _Cached(known, now + (_REGISTRY_TTL_S if known else _UNKNOWN_TTL_S), now)
        return {i: c.gateway for i in wanted if (c := self._cache[i]).gateway is not None}

    def forget_stale(self, ids: Iterable[str]) -> bool:
        """Before refusing by what the cache says, ask the database again (a kit registered or re-registered
        a moment ago must not wait out the cache): forget those entries older than a second; True if any."""
        now = time.monotonic()
        stale = [i for i in ids if i in self._cache and now - self._cache[i].fetched > _RECHECK_AFTER_S]
        for gateway in stale:
            del self._cache[gateway]
        return bool(stale)


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int


def changes_and_acks(
    messages: list[Incoming], registry: dict[str, RegisteredGateway], *, now: datetime
) -> tuple[Changes, list[tuple[str, Ack]]]:
    """What to write for a batch of messages received at `now`, and the acks to send once it is committed.

    Pure: no clock (a gateway is marked seen, and a status without a time is dated, at `now`), no I/O,
    no logging; a message refused is one of `Changes.rejections`, which the caller reports.
    """
    changes = Changes()
    acks: dict[str, list[Any]] = {}
    refused: dict[str, list[Refusal]] = {}
    for message in messages:
        decision = decide(message.topic, message.payload, registry)
        if isinstance(decision, Refused):
            _refuse(changes, refused, message, decision)
            continue
        gateway = decision.gateway
        changes.seen[gateway.id] = now
        topics = Topics(gateway.tenant, gateway.id)
        if isinstance(decision, Readings):
            try:
                mapped = [(r, observations(r, tenant=gateway.tenant, gateway=gateway.id))
                          for r in decision.batch.readings]
            except (KeyError, ValueError) as exc:
                # A reading this worker cannot map (say, a type from a newer gateway): the batch is refused and
                # stays on the gateway; the group goes on with the other messages.
                reason = f"cannot map a reading to FHIR ({type(exc).__name__}: {exc})"
                _refuse(changes, refused, message,
                        Refused(reason, "cannot_map", tuple(r.id for r in decision.batch.readings)))
                continue
            for reading, found in mapped:
                changes.readings.append(NewReading(
                    id=str(reading.id), tenant=gateway.tenant, gateway=gateway.id, patient=reading.patient,
                    type=reading.type, effective=reading.effective, zone=reading.assessment.zone,
                    body=reading.model_dump_json(),
                    observations=tuple(
                        NewObservation(o.id, o.identifier, o.code, o.effective, resource_json(o.resource))
                        for o in found
                    ),
                ))
                if found:  # a measuring device (the questionnaire's "device" is the gateway's page)
                    phd = device_id(reading.device, gateway.tenant)
                    if (gateway.tenant, phd) not in changes.devices:
                        changes.devices[(gateway.tenant, phd)] = NewDevice(
                            phd, json.dumps(device_resource(reading.device, reading.type, tenant=gateway.tenant)))
                changes.plans[gateway.id] = (reading.assessment.profile, reading.assessment.profile_version)
            phg = gateway_device_id(gateway.id, gateway.tenant)
            changes.devices.setdefault((gateway.tenant, phg),
                                       NewDevice(phg, json.dumps(gateway_resource(gateway.id, tenant=gateway.tenant))))
            acks.setdefault(topics.ack, []).extend(r.id for r in decision.batch.readings)
        elif isinstance(decision, StatusReport):
            s = decision.status
            changes.states.append(GatewayState(
                gateway=gateway.id, state=s.state, at=s.at or now, software_version=s.version,
                outbox_depth=s.outbox_depth, outbox_used_percent=s.outbox_used_percent, quarantined=s.quarantined,
                outbox_oldest_at=(None if s.outbox_oldest_s is None
                                  else (s.at or now) - timedelta(seconds=s.outbox_oldest_s)),
                faults=tuple(s.faults), devices=json.dumps([d.model_dump(mode="json") for d in s.devices]),
            ))
        elif isinstance(decision, EventReport):
            e = decision.event
            changes.events.append(NewEvent(
                id=str(e.id), tenant=gateway.tenant, gateway=gateway.id, kind=e.kind, at=e.at,
                detail=json.dumps(e.detail),
            ))
            acks.setdefault(topics.ack, []).append(e.id)
    return changes, [(topic, Ack(ids=acks.get(topic, []), refused=refused.get(topic, [])))
                     for topic in [*acks, *(t for t in refused if t not in acks)]]


def refusal_ack_topic(topic: str) -> str | None:
    """Where a refusal of a message on `topic` is answered: the ack topic of the tenant and gateway the topic
    names (the one the gateway listens on, even when that tenant is the wrong one); None if not a v1 topic."""
    try:
        tenant, gateway, _ = parse_up_topic(topic)
    except ValueError:
        return None
    return Topics(tenant, gateway).ack


def _refuse(changes: Changes, refused: dict[str, list[Refusal]], message: Incoming, decision: Refused) -> None:
    changes.rejections.append(NewRejection(message.topic, decision.reason, len(message.payload), decision.code))
    topic = refusal_ack_topic(message.topic)
    if topic is not None:
        what = message.topic.rsplit("/", 1)[-1]
        refused.setdefault(topic, []).append(Refusal(
            code=decision.code, detail=decision.reason[:300], ids=list(decision.ids),
            topic=what if what in UPSTREAM else None,
        ))


class IngestWorker:
    """One member of the consumer group: takes batches from the broker, commits them to `database` in one
    transaction each, then acks (module docstring). `run()` serves for ever; `counts` says what it did."""

    def __init__(
        self,
        broker: BrokerSettings,
        database: Database,
        *,
        identifier: str = "dho-central-1",
        group: str | None = "dho-central",
        session_expiry_s: int = 24 * 3600,
        batch_max: int = 200,
    ) -> None:
        self._broker = broker
        self._database = database
        self._identifier = identifier
        # Shared subscriptions and session expiry are MQTT 5; a 3.1.1 broker (the demo's) gets one
        # plain subscriber.
        self._group = group if broker.protocol == "5" else None
        self._session_expiry_s = session_expiry_s
        self._batch_max = batch_max
        self._registry = Registry(database)
        self.ready = asyncio.Event()
        self.counts: Counter[str] = Counter()

    @property
    def rejected(self) -> int:
        return self.counts["rejected"]

    def _client(self) -> aiomqtt.Client:
        v5 = self._broker.protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
        client = aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self._identifier,
            username=self._broker.username,
            password=self._broker.password.get_secret_value() if self._broker.password else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            # A persistent session: what arrives while this worker restarts waits for it.
            clean_start=False if v5 else mqtt_client.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=self._broker.keepalive_s,
            tls_context=self._broker.tls_context(),
            timeout=float("inf"),
        )
        # PUBACK only after the commit: paho must not acknowledge on receipt. aiomqtt does not expose
        # this switch, so it is set on its paho client before connecting.
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Serve for ever, reconnecting with jittered exponential backoff."""
        # Capped low: Mosquitto 2.0 does not restore shared subscriptions from its persistence file, so
        # until the workers are back after a broker restart, what gateways publish has no subscriber
        # (they send it again after their ack timeout). A few workers retrying every 2 s are no load on
        # a broker.
        backoff = Backoff(_RECONNECT_FIRST_S, _RECONNECT_MAX_S)
        while True:
            try:
                client = self._client()
                async with asyncio.timeout(OPERATION_TIMEOUT_S):
                    await client.__aenter__()
                try:
                    log.info("worker %s connected to %s:%d", self._identifier, self._broker.host, self._broker.port)
                    backoff.reset()
                    await self._session(client)
                finally:
                    self.ready.clear()
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(2):
                            await client.__aexit__(None, None, None)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                log.warning("worker %s: broker %s:%d: %s", self._identifier, self._broker.host, self._broker.port,
                            exc or type(exc).__name__)
            await backoff.wait()

    async def _session(self, client: aiomqtt.Client) -> None:
        for topic in subscriptions(self._group):
            await subscribe(client, topic)
        log.info("worker %s ready: %s", self._identifier, ", ".join(subscriptions(self._group)))
        self.ready.set()
        messages = client.messages
        async for first in messages:
            batch = [first]
            while len(batch) < self._batch_max and len(messages) > 0:
                batch.append(await anext(messages))
            await self._handle(client, batch)

    async def _handle(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> None:
        incoming = [
            Incoming(str(m.topic), bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b"", m.mid, m.qos)
            for m in batch
        ]
        registry = await self._registry.lookup(g for m in incoming if (g := gateway_of(m.topic)))
        received = datetime.now(UTC)
        changes, acks = changes_and_acks(incoming, registry, now=received)
        doubted = {g for r in changes.rejections if r.code in _REGISTRY_CODES and (g := gateway_of(r.topic))}
        if doubted and self._registry.forget_stale(doubted):
            registry = await self._registry.lookup(g for m in incoming if (g := gateway_of(m.topic)))
            changes, acks = changes_and_acks(incoming, registry, now=received)
        for refused in changes.rejections:
            log.warning("refused a message on %s: %s %s (answered with the reason, not acked)", refused.topic,
                        refused.code, refused.reason)
        try:
            await self._commit(changes)
        except sa.exc.DBAPIError as exc:
            # Valid JSON the database still refuses (a value over a column's size): find the message
            # that does it, one by one, so one bad message cannot stop the group.
            log.warning("worker %s: a batch of %d was refused by the database (%s); storing one by one",
                        self._identifier, len(incoming), str(exc.orig or exc).splitlines()[0])
            acks = []
            for m in incoming:
                single, single_acks = changes_and_acks([m], registry, now=received)  # refusals logged above
                try:
                    await self._commit(single)
                except sa.exc.DBAPIError as refused:
                    reason = f"refused by the database: {str(refused.orig or refused).splitlines()[0]}"
                    log.warning("refused a message on %s: %s (answered with the reason, not acked)", m.topic, reason)
                    await self._commit(Changes(rejections=[NewRejection(m.topic, reason, len(m.payload),
                                                                        "not_stored")]))
                    self.counts["rejected"] += 1
                    answer = refusal_ack_topic(m.topic)
                    if answer is not None:
                        what = m.topic.rsplit("/", 1)[-1]
                        acks.append((answer, Ack(ids=[], refused=[Refusal(
                            code="not_stored", detail="the central database refused it (see dho-central gateways "
                            "refusals)", ids=list(ids_in(what, m.payload)))])))
                    continue
                self.counts["rejected"] += len(single.rejections)
                acks.extend(single_acks)
        else:
            self.counts["rejected"] += len(changes.rejections)
        if acks:
            # gather, not a TaskGroup: a broker that goes away mid-ack must raise its MqttError itself (run()
            # reconnects on it; an ExceptionGroup around it ended the worker). Nothing was PUBACKed yet, so
            # the broker delivers the batch again and the ids already stored are acked again.
            sent = await asyncio.gather(*(publish(client, topic, ack.wire_json()) for topic, ack in acks),
                                        return_exceptions=True)
            for outcome in sent:
                if isinstance(outcome, PublishRefused):  # stored all the same; the gateway sends it again
                    log.error("worker %s: the broker refuses the central's acks (%s): give the central's certificate "
                              "its ACL block (dho-central gateways acl)", self._identifier, outcome.reason)
                elif isinstance(outcome, BaseException):
                    raise outcome
        self.counts["acks"] += len(acks)
        for m in incoming:
            if m.qos > 0:
                client._client.ack(m.mid, m.qos)

    async def _commit(self, changes: Changes) -> None:
        """Commit, retrying while the failure is transient (`central.store.transient`: the database away or
        restarting, busy, out of resources, a transaction rolled back for a conflict): nothing is acked before
        it succeeds. Any other failure is raised: a refusal of what this batch holds."""
        if changes.empty():
            return
        backoff = Backoff(_COMMIT_RETRY_FIRST_S, _COMMIT_RETRY_MAX_S, jitter=False)
        while True:
            try:
                done = await asyncio.to_thread(self._database.commit, changes)
                break
            except sa.exc.DBAPIError as exc:
                why = transient(exc)
                if why is None:
                    raise
                delay = backoff.next_delay()
                log.error("worker %s: database %s (%s); retrying in %.1f s, nothing acked meanwhile",
                          self._identifier, why, str(exc.orig or exc).splitlines()[0], delay)
                await asyncio.sleep(delay)
        self.counts["stored"] += done.new_readings
        self.counts["duplicates"] += done.duplicate_readings
        self.counts["events"] += done.new_events

