"""Drain the outbox to the broker; an entry leaves the outbox only when the central service acks it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

import aiomqtt
from pydantic import ValidationError

from sync.connection import BrokerSettings, publish, stay_connected, subscribe
from sync.outbox import Outbox, OutboxEntry, OutboxUnavailable
from sync.topics import Topics
from sync.wire import PROTOCOL_VERSION, Ack, DeviceStatus, Event, EventKind, Status

log = logging.getLogger(__name__)

AckListener = Callable[[list[str]], None]


class StatusFacts(NamedTuple):
    """What the gateway adds to its status beyond the outbox depth."""

    faults: list[str]
    outbox_used_percent: int | None = None
    quarantined: int | None = None
    devices: tuple[DeviceStatus, ...] = ()


def _no_facts() -> StatusFacts:
    return StatusFacts([])
_OUTBOX_RETRY_S = 5.0
_EVENTS_KEPT = 200


class Uplink:
    """At-least-once delivery of outbox entries, with a window of batches in flight.

    Unacknowledged entries are sent again after `ack_timeout_s` and after every reconnect; reading ids
    are stable, so the central service deduplicates.
    """

    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerSettings,
        topics: Topics,
        *,
        version: str,
        batch_size: int = 50,
        window: int = 8,
        ack_timeout_s: float = 30.0,
        status_interval_s: float = 300.0,
        on_ack: AckListener | None = None,
        facts: Callable[[], StatusFacts] = _no_facts,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._topics = topics
        self._version = version
        self._batch_size = batch_size
        self._window = window
        self._ack_timeout_s = ack_timeout_s
        self._status_interval_s = status_interval_s
        self._on_ack = on_ack
        self._facts = facts
        # Events wait here while offline; the durable state they report is in every status too.
        self._events: deque[Event] = deque(maxlen=_EVENTS_KEPT)
        self._wake = asyncio.Event()
        self._status_changed = asyncio.Event()
        # batch id -> (reading ids still unacknowledged, monotonic send time)
        self._inflight: dict[str, tuple[set[str], float]] = {}
        self.connected = asyncio.Event()
        self.resends = 0

    def notify(self) -> None:
        """A new entry was committed to the outbox."""
        self._wake.set()

    def refresh_status(self) -> None:
        """Something the status reports has changed: publish it now rather than at the next heartbeat."""
        self._status_changed.set()

    def post_event(self, kind: EventKind, detail: dict[str, str | int | float] | None = None) -> None:
        """Queue an event for `up/events` (call on the event loop's thread)."""
        self._events.append(Event(
            gateway=self._topics.gateway, id=uuid.uuid4(), kind=kind, at=datetime.now(UTC), detail=detail or {},
        ))
        self._wake.set()

    async def run(self) -> None:
        will = aiomqtt.Will(
            self._topics.status, self._status("offline").model_dump_json(), qos=1, retain=True
        )
        # The broker's own in-flight limit must not be exceeded (Mosquitto's default is 20).
        await stay_connected(
            self._broker, self._topics.gateway, self._session, will=will, max_inflight=self._window
        )

    def _status(self, state: str) -> Status:
        if state != "online":
            return Status(gateway=self._topics.gateway, state="offline", version=self._version)
        depth = None
        with contextlib.suppress(OutboxUnavailable):
            depth = self._outbox.depth()
        facts = self._facts()
        return Status(
            gateway=self._topics.gateway,
            state="online",
            version=self._version,
            outbox_depth=depth,
            outbox_used_percent=facts.outbox_used_percent,
            quarantined=facts.quarantined,
            faults=facts.faults,
            devices=list(facts.devices),
            at=datetime.now(UTC),
        )

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        status = await asyncio.to_thread(self._status, "online")
        await publish(client, self._topics.status, status.model_dump_json(), retain=True)

    async def _session(self, client: aiomqtt.Client) -> None:
        self._inflight.clear()
        await subscribe(client, self._topics.ack)
        await self._publish_status(client)
        self.connected.set()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._receive_acks(client))
                tasks.create_task(self._send(client))
                tasks.create_task(self._heartbeat(client))
        except asyncio.CancelledError:
            # A clean stop sends a normal DISCONNECT, which suppresses the Last Will: say offline ourselves.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(2):
                    await client.publish(
                        self._topics.status, self._status("offline").model_dump_json(), qos=1, retain=True
                    )
            raise
        finally:
            self.connected.clear()

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._status_interval_s):
                    await self._status_changed.wait()
            self._status_changed.clear()
            await self._publish_status(client)

    async def _receive_acks(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                ack = Ack.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
            except (ValidationError, TypeError) as exc:
                log.warning("ignored a malformed ack on %s: %s", message.topic, exc)
                continue
            ids = [str(i) for i in ack.ids]
            try:
                removed = await asyncio.to_thread(self._outbox.acknowledge, ids)
            except OutboxUnavailable as exc:
                # Kept, not lost: they are sent again and the central service acks them again.
                log.error("%s; the acked readings stay until a later ack", exc)
                continue
            acked = set(ids)
            for batch_id in list(self._inflight):
                remaining, _ = self._inflight[batch_id]
                remaining -= acked
                if not remaining:
                    del self._inflight[batch_id]
            if removed and self._on_ack:
                try:  # whoever listens (a printer, a page) must not stop the acks from being heard
                    self._on_ack(removed)
                except Exception:
                    log.exception("ack listener failed; delivery goes on")
            self._wake.set()

    def _expire(self) -> bool:
        now = time.monotonic()
        if any(now - sent > self._ack_timeout_s for _, sent in self._inflight.values()):
            self._inflight.clear()
            self.resends += 1
            return True
        return False

    def _next_deadline(self) -> float | None:
        if not self._inflight:
            return None
        oldest = min(sent for _, sent in self._inflight.values())
        return max(0.0, oldest + self._ack_timeout_s - time.monotonic())

    async def _send(self, client: aiomqtt.Client) -> None:
        cursor = 0  # a fresh session re-sends everything still unacknowledged
        while True:
            self._wake.clear()
            while self._events:
                await publish(client, self._topics.events, self._events[0].model_dump_json())
                self._events.popleft()
            if self._expire():
                log.info("no ack within %.0f s; sending unacknowledged readings again", self._ack_timeout_s)
                cursor = 0
            if len(self._inflight) < self._window:
                try:
                    entries = await asyncio.to_thread(self._outbox.pending, cursor, self._batch_size)
                except OutboxUnavailable as exc:
                    log.error("%s; trying again in %.0f s", exc, _OUTBOX_RETRY_S)
                    await asyncio.sleep(_OUTBOX_RETRY_S)
                    continue
                if entries:
                    await self._publish_batch(client, entries)
                    cursor = entries[-1].seq
                    continue
            # Not asyncio.wait_for: on 3.11 it swallows a cancel that arrives as the wake-up fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_deadline()):
                    await self._wake.wait()

    async def _publish_batch(self, client: aiomqtt.Client, entries: list[OutboxEntry]) -> None:
        batch_id = str(uuid.uuid4())
        header = json.dumps(
            {
                "v": PROTOCOL_VERSION,
                "gateway": self._topics.gateway,
                "batch": batch_id,
                "sent": datetime.now(UTC).isoformat(),
            }
        )
        # Entries are already wire JSON: splice them in rather than parse and re-serialise.
        payload = header[:-1].encode() + b',"readings":[' + b",".join(e.payload for e in entries) + b"]}"
        self._inflight[batch_id] = ({e.id for e in entries}, time.monotonic())
        await publish(client, self._topics.readings, payload)
