"""An outbox in memory, shipped beside the `Outbox` interface for tests and benches (as httpx ships
MockTransport): what the uplink drains, without a file, keys or fsync.

It holds to the same contract as `SealedOutbox` for everything the uplink calls (tests/test_outbox_contract.py
runs one set of tests against both). It is not a store: nothing is sealed, nothing survives the
process, and it has no history, documents or keys.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import TYPE_CHECKING

from gateway.storage.interface import Outbox, OutboxEntry
from gateway.storage.outbox import PutResult


class MemoryOutbox:
    """`gateway.storage.Outbox` in memory: readings and events in the order they were put, until their
    id is acknowledged. Safe to call from several threads (the uplink calls it through
    `asyncio.to_thread`)."""

    def __init__(self) -> None:
        self._readings: dict[str, OutboxEntry] = {}
        self._events: dict[str, OutboxEntry] = {}
        self._first_ids: dict[bytes | str, str] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def put(self, record_id: str, payload: bytes, dedup: bytes | str | None = None) -> PutResult:
        """Keep one reading until its id is acknowledged. With `dedup` (what identifies the physical
        measurement), one put before under the same `dedup` keeps its first id and nothing is added,
        also after it was acknowledged (as SealedOutbox remembers a dedup tag)."""
        with self._lock:
            if dedup is not None:
                first = self._first_ids.setdefault(dedup, record_id)
                if first != record_id:
                    return PutResult(first, new=False)
            self._seq += 1
            self._readings[record_id] = OutboxEntry(self._seq, record_id, payload)
        return PutResult(record_id, new=True)

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged readings with seq > after_seq, oldest first, at most `limit`."""
        with self._lock:
            return self._after(self._readings, after_seq, limit)

    def put_event(self, event_id: str, payload: bytes) -> None:
        """Keep one event until its id is acknowledged; putting the same event id again changes nothing."""
        with self._lock:
            if event_id not in self._events:
                self._seq += 1
                self._events[event_id] = OutboxEntry(self._seq, event_id, payload)

    def pending_events(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged events with seq > after_seq, oldest first, at most `limit`."""
        with self._lock:
            return self._after(self._events, after_seq, limit)

    def acknowledge(self, ids: Collection[str]) -> list[str]:
        """Forget these readings or events; returns the ids that were still there, in the order given."""
        with self._lock:
            return [i for i in ids if self._readings.pop(i, None) is not None or self._events.pop(i, None) is not None]

    def depth(self) -> int:
        """Readings waiting (events are not counted, as in SealedOutbox)."""
        with self._lock:
            return len(self._readings)

    @staticmethod
    def _after(entries: dict[str, OutboxEntry], after_seq: int, limit: int) -> list[OutboxEntry]:
        # Dicts keep insertion order and seqs grow with it: the first `limit` after `after_seq` are the oldest.
        found: list[OutboxEntry] = []
        for entry in entries.values():
            if 0 <= limit <= len(found):  # a negative limit is none, as SQLite's LIMIT -1
                break
            if entry.seq > after_seq:
                found.append(entry)
        return found


if TYPE_CHECKING:
    _an_outbox: Outbox = MemoryOutbox()  # mypy holds MemoryOutbox to the Outbox protocol
