"""Reference central receiver: what the demo uses as "the central service" and what tests check against.

It subscribes to every gateway's readings and events, validates each batch or event, stores them in its
own SQLite file (an id seen before is ignored), and acks the ids only after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
from pydantic import ValidationError

from sync.connection import BrokerSettings, publish, stay_connected, subscribe
from sync.topics import PREFIX, Topics, parse_up_topic
from sync.wire import Ack, Event, ReadingBatch, WireReading

log = logging.getLogger(__name__)


class CentralStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS readings (
                id TEXT PRIMARY KEY, tenant TEXT NOT NULL, gateway TEXT NOT NULL,
                type TEXT NOT NULL, effective TEXT NOT NULL, zone TEXT NOT NULL,
                body TEXT NOT NULL, stored_at TEXT NOT NULL)"""
        )
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS events (
                id TEXT PRIMARY KEY, tenant TEXT NOT NULL, gateway TEXT NOT NULL,
                kind TEXT NOT NULL, body TEXT NOT NULL, stored_at TEXT NOT NULL)"""
        )

    def store(self, tenant: str, batch: ReadingBatch) -> tuple[int, int]:
        """Store a batch in one transaction; returns (new, duplicates)."""
        now = datetime.now(UTC).isoformat()
        rows = [
            (str(r.id), tenant, batch.gateway, r.type, r.effective.isoformat(), r.assessment.zone,
             r.model_dump_json(), now)
            for r in batch.readings
        ]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO readings VALUES (?,?,?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")
            new = self._db.total_changes - before
        return new, len(rows) - new

    def store_event(self, tenant: str, event: Event) -> bool:
        """Store one event; False if its id was stored before (a re-send)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?)",
                (str(event.id), tenant, event.gateway, event.kind, event.model_dump_json(),
                 datetime.now(UTC).isoformat()),
            )
        return cursor.rowcount == 1

    def events(self, gateway: str | None = None) -> list[Event]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM events WHERE ?1 IS NULL OR gateway = ?1 ORDER BY rowid", (gateway,)).fetchall()
        return [Event.model_validate_json(body) for (body,) in rows]

    def readings(self, gateway: str | None = None) -> list[WireReading]:
        with self._lock:
            if gateway is None:
                rows = self._db.execute("SELECT body FROM readings ORDER BY rowid").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT body FROM readings WHERE gateway = ? ORDER BY rowid", (gateway,)
                ).fetchall()
        return [WireReading.model_validate_json(body) for (body,) in rows]

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM readings").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ReferenceCentral:
    def __init__(
        self,
        broker: BrokerSettings,
        store: CentralStore,
        *,
        identifier: str = "dho-central",
        subscription: str = f"{PREFIX}/+/+/up/readings",
        events_subscription: str = f"{PREFIX}/+/+/up/events",
    ) -> None:
        self._broker = broker
        self._store = store
        self._identifier = identifier
        self._subscription = subscription
        self._events_subscription = events_subscription
        self.ready = asyncio.Event()
        self.duplicates = 0
        self.rejected = 0

    async def run(self) -> None:
        await stay_connected(self._broker, self._identifier, self._session)

    async def _session(self, client: aiomqtt.Client) -> None:
        await subscribe(client, self._subscription)
        await subscribe(client, self._events_subscription)
        self.ready.set()
        try:
            async for message in client.messages:
                await self._handle(client, str(message.topic), bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
        finally:
            self.ready.clear()

    async def _handle(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        if topic.endswith("/up/events"):
            await self._handle_event(client, topic, payload)
            return
        try:
            tenant, gateway, _ = parse_up_topic(topic)
            batch = ReadingBatch.model_validate_json(payload)
            if batch.gateway != gateway:
                raise ValueError(f"batch says gateway {batch.gateway!r} but came on {gateway!r}'s topic")
        except (ValueError, ValidationError) as exc:
            # No ack: the gateway keeps the readings and a human can look at why.
            self.rejected += 1
            log.warning("rejected a batch on %s: %s", topic, exc)
            return
        _, duplicates = await asyncio.to_thread(self._store.store, tenant, batch)
        self.duplicates += duplicates
        ack = Ack(ids=[r.id for r in batch.readings])
        await publish(client, Topics(tenant, gateway).ack, ack.model_dump_json())

    async def _handle_event(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        try:
            tenant, gateway, _ = parse_up_topic(topic)
            event = Event.model_validate_json(payload)
            if event.gateway != gateway:
                raise ValueError(f"event says gateway {event.gateway!r} but came on {gateway!r}'s topic")
        except (ValueError, ValidationError) as exc:
            self.rejected += 1
            log.warning("rejected an event on %s: %s", topic, exc)
            return
        if not await asyncio.to_thread(self._store.store_event, tenant, event):
            self.duplicates += 1
        await publish(client, Topics(tenant, gateway).ack, Ack(ids=[event.id]).model_dump_json())
