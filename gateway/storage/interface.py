"""What the sync loop needs of a durable outbox; the gateway's sealed store provides it."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple, Protocol


class OutboxUnavailable(RuntimeError):
    """The outbox cannot be written or read just now (disk full, I/O error); nothing stored was lost."""


class OutboxEntry(NamedTuple):
    """One waiting record as the uplink sends it: its seq (the cursor `pending` continues after), its id
    (what the central service acknowledges) and its payload, unsealed."""

    seq: int
    id: str
    payload: bytes  # one WireReading (or, from `pending_events`, one Event) as JSON, already unsealed


class Outbox(Protocol):
    """What the uplink needs of a durable outbox: readings and events wait, in order, until the central
    service acknowledges their id. `SealedOutbox` provides it on disk, `MemoryOutbox` in memory."""

    def pending(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged entries with seq > after_seq, oldest first (measurement order per device)."""
        ...

    def acknowledge(self, ids: Collection[str]) -> list[str]:
        """Delete these readings or events for good; returns the ids that were still there."""
        ...

    def put_event(self, event_id: str, payload: bytes) -> None:
        """Commit one Event (JSON) durably; it stays until its id is acknowledged. Idempotent per id."""
        ...

    def pending_events(self, after_seq: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged events with seq > after_seq, oldest first."""
        ...

    def depth(self) -> int:
        """Readings waiting for the central service's ack (events are not counted)."""
        ...

    # Every method may raise OutboxUnavailable.
