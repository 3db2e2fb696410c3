"""Drain the outbox to the broker; an entry leaves the outbox only when the central service acks it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import aiomqtt
from pydantic import ValidationError

from gateway.listeners import Listeners
from gateway.storage import Outbox, OutboxEntry, OutboxUnavailable
from gateway.uplink.connection import stay_connected
from protocol import (
    PROTOCOL_VERSION,
    Ack,
    Backoff,
    BrokerSettings,
    DeviceStatus,
    Event,
    EventKind,
    PublishRefused,
    Refusal,
    Status,
    Topics,
    publish,
    subscribe,
)

log = logging.getLogger(__name__)

# Told the ids of the readings the central service acknowledged, once the outbox has removed them. An
# exception it raises is logged, and delivery goes on.
AckListener = Callable[[list[str]], None]
# Raw bytes of a `down/config` message (untrusted); the gateway verifies them. Awaited in the receive
# loop: it must not block (verification runs in a thread) and must not raise.
ConfigListener = Callable[[bytes], Awaitable[None]]


class StatusFacts(NamedTuple):
    """What the gateway adds to its status beyond the outbox depth."""

    faults: list[str]
    outbox_used_percent: int | None = None
    quarantined: int | None = None
    outbox_oldest_s: float | None = None
    devices: tuple[DeviceStatus, ...] = ()
    profile: str | None = None
    rules_hash: str | None = None
    plan_version: int | None = None
    plan_hash: str | None = None
    rejected: int | None = None
    unassigned: int | None = None


def _no_facts() -> StatusFacts:
    return StatusFacts([])
_OUTBOX_RETRY_S = 5.0
# A refused entry is not sent again before this pause (doubling, jittered): the central's answer will not
# change until a person acts (registers the kit), and the outbox keeps it meanwhile.
REFUSAL_PAUSE_S, REFUSAL_PAUSE_MAX_S = 30.0, 1800.0
CENTRAL_REFUSAL_FILE = "central-refusal.json"  # in data_dir: the refusal in force, for `dho-gateway status`
BROKER_REFUSED = "broker_refused"  # not a central code: the broker itself dropped the message (MQTT 5 PUBACK)

_FIXES = {
    BROKER_REFUSED: "the broker refuses this kit's messages (its ACL has no entry for this gateway): register the "
                    "kit, write the broker's ACL again (dho-central gateways acl --out …) and reload the broker",
    "unknown_gateway": "the central service does not know this gateway: register it (dho-central gateways register "
                       "… registration.json)",
    "wrong_tenant": "the central service has this gateway under another tenant: provision the kit for its tenant, or "
                    "register it there (dho-central gateways register)",
    "patient_not_registered": "the central service does not know this kit's patient (a reissue it was not told of?): "
                              "apply the kit's registration.json (dho-central gateways register)",
    "cannot_map": "the central service cannot read this kit's readings: upgrade the central service",
}


def refusal_fault(code: str, detail: str) -> str:
    """The status fault for a refusal by the central service: what is wrong and the fix, one line."""
    fix = _FIXES.get(code, f"the central service refuses what this kit sends ({code}: {detail})")
    return f"{fix}; the readings wait on the box"


def read_refusal_fault(path: Path) -> str | None:
    """The fault of the refusal a running gateway wrote to `path` (`dho-gateway status`), or None."""
    try:
        data = json.loads(path.read_text())
        return str(data["fault"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
_EVENTS_KEPT = 200  # events not yet committed to the outbox (it failing: a full disk) wait in memory


# What one reading may take in a batch on the wire: a batch is padded (with JSON whitespace, which every
# parser skips) to this much per reading, so its size tells how many readings it carries, never their
# zones or kinds (issue 19.10: the MQTT message size gave the zone away as the record size did). The
# largest usual reading, a red blood pressure with its rules and advice keys, is about 1.6 KB.
WIRE_BYTES_PER_READING = 2048
_WIRE_HEADER_BYTES = 256


def pad_batch(payload: bytes, readings: int) -> bytes:
    """`payload` followed by spaces up to the bucket for this many readings (or the next whole reading's
    worth when an unusually long one spills over)."""
    bucket = _WIRE_HEADER_BYTES + readings * WIRE_BYTES_PER_READING
    if len(payload) > bucket:  # whole readings' worth more, so the size still says little
        bucket += -(-(len(payload) - bucket) // WIRE_BYTES_PER_READING) * WIRE_BYTES_PER_READING
    return payload + b" " * (bucket - len(payload))


class HeardRefusal(NamedTuple):
    """The refusal in force: its code (a central's, or `broker_refused`) and the detail heard with it."""

    code: str
    detail: str


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
        facts: Callable[[], StatusFacts] = _no_facts,
        on_config: ConfigListener | None = None,
        refusal_file: Path | None = None,
        refusal_pause_s: tuple[float, float] = (REFUSAL_PAUSE_S, REFUSAL_PAUSE_MAX_S),
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._topics = topics
        self._version = version
        self._batch_size = batch_size
        self._window = window
        self._ack_timeout_s = ack_timeout_s
        self._status_interval_s = status_interval_s
        # Told the ids the central service acknowledged, once they are deleted from the outbox.
        self.acks: Listeners[[list[str]]] = Listeners("ack")
        self._facts = facts
        self._on_config = on_config
        # The latest baseline proposal (retained on the broker), waiting to be published.
        self._proposal: bytes | None = None
        # Events on their way into the outbox, where they wait (sealed, across restarts) for their ack.
        self._unsaved: deque[Event] = deque(maxlen=_EVENTS_KEPT)
        self._to_save = asyncio.Event()
        self._saving_fails = False  # then the unsaved ones are sent from memory too (best effort)
        self._sent_from_memory: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._status_changed = asyncio.Event()
        # batch id -> (reading ids still unacknowledged, monotonic send time)
        self._inflight: dict[str, tuple[set[str], float]] = {}
        self.connected = asyncio.Event()
        self.resends = 0
        # The central's latest refusal (protocol 1.1) until an ack of stored ids clears it; the refused ids are
        # held back until `_held_until` (the one Backoff), then tried again.
        self.refusal: HeardRefusal | None = None
        self._refusal_file = refusal_file
        self._refusal_backoff = Backoff(*refusal_pause_s)
        self._held: set[str] = set()
        self._held_until = 0.0
        if refusal_file is not None:
            with contextlib.suppress(OSError):
                refusal_file.unlink(missing_ok=True)  # a new process has heard no refusal yet

    def faults(self) -> list[str]:
        """The status fault of the central's refusal in force, if any."""
        return [] if self.refusal is None else [refusal_fault(self.refusal.code, self.refusal.detail)]

    def notify(self) -> None:
        """A new entry was committed to the outbox."""
        self._wake.set()

    def refresh_status(self) -> None:
        """Something the status reports has changed: publish it now rather than at the next heartbeat."""
        self._status_changed.set()

    def post_event(self, kind: EventKind, detail: dict[str, str | int | float] | None = None) -> None:
        """Send an event on `up/events` (call on the event loop's thread). It is committed to the outbox
        at once (off the event loop) and leaves it only when the central service acks its id, like a
        reading: a restart or a week offline loses none."""
        self._unsaved.append(Event(
            gateway=self._topics.gateway, id=uuid.uuid4(), kind=kind, at=datetime.now(UTC), detail=detail or {},
        ))
        self._to_save.set()

    def publish_proposal(self, payload: bytes) -> None:
        """Publish this baseline proposal (retained) as soon as connected; a newer one replaces it."""
        self._proposal = payload
        self._wake.set()

    async def run(self) -> None:
        def will() -> aiomqtt.Will:
            offline = self._status("offline", last_will=True)
            return aiomqtt.Will(self._topics.status, offline.model_dump_json(), qos=1, retain=True)

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._save_events())
            # The broker's own in-flight limit must not be exceeded (Mosquitto's default is 20).
            tasks.create_task(stay_connected(
                self._broker, self._topics.gateway, self._session, will=will, max_inflight=self._window
            ))

    async def _save_events(self) -> None:
        while True:
            await self._to_save.wait()
            self._to_save.clear()
            while self._unsaved:
                event = self._unsaved[0]
                try:
                    await asyncio.to_thread(self._outbox.put_event, str(event.id), event.model_dump_json().encode())
                except OutboxUnavailable as exc:
                    if not self._saving_fails:
                        log.error("%s; events wait in memory and are sent from there meanwhile", exc)
                    self._saving_fails = True
                    self._wake.set()
                    await asyncio.sleep(_OUTBOX_RETRY_S)
                    continue
                self._unsaved.popleft()
                self._saving_fails = False
                self._wake.set()

    def _status(self, state: str, *, last_will: bool = False) -> Status:
        if state != "online":
            return Status(gateway=self._topics.gateway, state="offline", version=self._version,
                          at=datetime.now(UTC), last_will=last_will)
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
            outbox_oldest_s=facts.outbox_oldest_s,
            quarantined=facts.quarantined,
            faults=facts.faults,
            devices=list(facts.devices),
            profile=facts.profile,
            rules_hash=facts.rules_hash,
            plan_version=facts.plan_version,
            plan_hash=facts.plan_hash,
            rejected=facts.rejected,
            unassigned=facts.unassigned,
            at=datetime.now(UTC),
        )

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: str | bytes, *, ids: set[str] | None = None,
                       retain: bool = False) -> bool:
        """`publish`, with a message the broker refuses (MQTT 5: not authorized) held back and said where a
        person looks, never taken for sent; True when the broker took it."""
        try:
            await publish(client, topic, payload, retain=retain)
        except PublishRefused as exc:
            self._hold_back(HeardRefusal(BROKER_REFUSED, exc.reason), ids or set())
            return False
        if self.refusal is not None and self.refusal.code == BROKER_REFUSED:
            self._accepted()  # the broker takes this kit's messages again
        return True

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        status = await asyncio.to_thread(self._status, "online")
        await self._publish(client, self._topics.status, status.model_dump_json(), retain=True)

    async def _session(self, client: aiomqtt.Client) -> None:
        self._inflight.clear()
        self._sent_from_memory.clear()
        await subscribe(client, self._topics.ack)
        if self._on_config is not None:
            # Retained: the plan in force is delivered again on every subscribe; the gateway knows it.
            await subscribe(client, self._topics.config)
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
            if self._on_config is not None and message.topic.matches(self._topics.config):
                await self._on_config(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
                continue
            try:
                ack = Ack.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
            except (ValidationError, TypeError) as exc:
                log.warning("ignored a malformed ack on %s: %s", message.topic, exc)
                continue
            if ack.refused:
                self._refused(ack.refused)
            if not ack.ids:
                continue
            if not ack.refused:
                self._accepted()
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
            if removed:  # whoever listens (a printer, a page) cannot stop the acks from being heard
                self.acks.notify(removed)
            self._wake.set()

    def _refused(self, refused: list[Refusal]) -> None:
        """The central will not store these: keep them, hold them back for a pause, tell a person once."""
        first = refused[0]
        self._hold_back(HeardRefusal(first.code, first.detail), {str(i) for r in refused for i in r.ids})

    def _hold_back(self, heard: HeardRefusal, ids: set[str]) -> None:
        """Refused by the central or by the broker: keep `ids`, hold them back for a pause, tell a person once."""
        now = time.monotonic()
        if now >= self._held_until:  # one more pause per round of resends, not one per refused batch
            self._held_until = now + self._refusal_backoff.next_delay()
        self._held |= ids
        for batch_id in list(self._inflight):  # answered: no resend on the ack timeout
            remaining, _ = self._inflight[batch_id]
            remaining -= ids
            if not remaining:
                del self._inflight[batch_id]
        first = heard
        changed = self.refusal is None or self.refusal.code != first.code
        self.refusal = first
        if changed:
            fault = refusal_fault(first.code, first.detail)
            log.error("the central service refuses what this gateway sends (%s: %s): %s", first.code, first.detail,
                      fault)
            self._write_refusal({"code": first.code, "detail": first.detail, "fault": fault,
                                 "since": datetime.now(UTC).isoformat()})
            self.post_event("refused_by_central", {"code": first.code, "detail": first.detail})
            self.refresh_status()
        self._wake.set()

    def _accepted(self) -> None:
        """The central stored something again: the refusal is over; what was held back goes at once."""
        self._refusal_backoff.reset()
        self._held_until = 0.0
        if self.refusal is None:
            return
        log.warning("the central service acknowledges again (the refusal %s is over)", self.refusal.code)
        self.post_event("refusal_cleared", {"code": self.refusal.code})
        self.refusal = None
        self._write_refusal(None)
        self.refresh_status()

    def _write_refusal(self, data: dict[str, str] | None) -> None:
        if self._refusal_file is None:
            return
        try:
            if data is None:
                self._refusal_file.unlink(missing_ok=True)
            else:
                part = self._refusal_file.with_suffix(".part")
                part.write_text(json.dumps(data))
                part.replace(self._refusal_file)
        except OSError as exc:
            log.warning("cannot record the refusal in %s: %s", self._refusal_file, exc)

    def _release_held(self) -> bool:
        """True once the pause of the held entries is over (they are sent again from the start)."""
        if self._held and time.monotonic() >= self._held_until:
            self._held.clear()
            return True
        return False

    def _expire(self) -> bool:
        now = time.monotonic()
        if any(now - sent > self._ack_timeout_s for _, sent in self._inflight.values()):
            self._inflight.clear()
            self.resends += 1
            return True
        return False

    def _next_deadline(self) -> float | None:
        now = time.monotonic()
        deadlines = [self._held_until - now] if self._held else []
        if self._inflight:
            deadlines.append(min(sent for _, sent in self._inflight.values()) + self._ack_timeout_s - now)
        return max(0.0, min(deadlines)) if deadlines else None

    async def _send(self, client: aiomqtt.Client) -> None:
        cursor = event_cursor = 0  # a fresh session re-sends everything still unacknowledged
        while True:
            self._wake.clear()
            if self._saving_fails:
                for event in [e for e in self._unsaved if e.id not in self._sent_from_memory]:
                    await self._publish(client, self._topics.events, event.model_dump_json())
                    self._sent_from_memory.add(event.id)  # and again from the outbox once it is stored
            if self._proposal is not None:
                proposal = self._proposal
                sent = await self._publish(client, self._topics.proposal, proposal, retain=True)
                if sent and self._proposal is proposal:
                    self._proposal = None
            if self._expire():
                log.info("no ack within %.0f s; sending unacknowledged readings again", self._ack_timeout_s)
                cursor = event_cursor = 0
            if self._release_held():
                log.info("sending the readings the central service refused again")
                cursor = event_cursor = 0
            if len(self._inflight) < self._window:
                event_cursor = await self._send_events(client, event_cursor)
            if len(self._inflight) < self._window:
                try:
                    entries = await asyncio.to_thread(self._outbox.pending, cursor, self._batch_size)
                except OutboxUnavailable as exc:
                    log.error("%s; trying again in %.0f s", exc, _OUTBOX_RETRY_S)
                    await asyncio.sleep(_OUTBOX_RETRY_S)
                    continue
                if entries:
                    cursor = entries[-1].seq
                    if sendable := [e for e in entries if e.id not in self._held]:
                        await self._publish_batch(client, sendable)
                    continue
            # Not asyncio.wait_for: on 3.11 it swallows a cancel that arrives as the wake-up fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_deadline()):
                    await self._wake.wait()

    async def _send_events(self, client: aiomqtt.Client, cursor: int) -> int:
        """Send the next pending events after `cursor` (those held back after a refusal skipped); the new cursor."""
        try:
            events = await asyncio.to_thread(self._outbox.pending_events, cursor, self._batch_size)
        except OutboxUnavailable as exc:
            log.error("%s; trying again in %.0f s", exc, _OUTBOX_RETRY_S)
            return cursor
        for entry in events:
            cursor = entry.seq
            if entry.id in self._held:
                continue
            self._inflight[f"event:{entry.id}"] = ({entry.id}, time.monotonic())
            await self._publish(client, self._topics.events, entry.payload, ids={entry.id})
        return cursor

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
        payload = pad_batch(payload, len(entries))
        self._inflight[batch_id] = ({e.id for e in entries}, time.monotonic())
        await self._publish(client, self._topics.readings, payload, ids={e.id for e in entries})
