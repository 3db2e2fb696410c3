"""One contract, two outboxes: what the uplink relies on holds for SealedOutbox and for the MemoryOutbox
that tests and benches use in its place (so a test that passes against the fake means the same)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.readings import uuid7
from gateway.storage import MemoryOutbox, SealedOutbox

Box = SealedOutbox | MemoryOutbox


@pytest.fixture(params=["sealed", "memory"])
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Box]:
    if request.param == "memory":
        yield MemoryOutbox()
        return
    sealed = SealedOutbox(tmp_path / "outbox.sqlite3", os.urandom(32))
    try:
        yield sealed
    finally:
        sealed.close()


def put_readings(box: Box, count: int) -> list[str]:
    ids = [str(uuid7()) for _ in range(count)]
    for n, record_id in enumerate(ids):
        assert box.put(record_id, b'{"n":%d}' % n).new
    return ids


def test_an_empty_outbox_has_nothing_to_send(box: Box) -> None:
    assert box.pending(0, 50) == []
    assert box.pending_events(0, 50) == []
    assert box.depth() == 0
    assert box.acknowledge([]) == []
    assert box.acknowledge(["never-stored"]) == []


def test_readings_come_back_oldest_first_after_the_cursor_and_within_the_limit(box: Box) -> None:
    ids = put_readings(box, 5)
    entries = box.pending(0, 50)
    assert [e.id for e in entries] == ids
    assert [e.payload for e in entries] == [b'{"n":%d}' % n for n in range(5)]
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5 and seqs[0] > 0
    assert [e.id for e in box.pending(seqs[1], 2)] == ids[2:4]  # strictly after the cursor, at most `limit`
    assert box.pending(seqs[-1], 50) == []
    assert box.pending(0, 0) == []
    assert box.depth() == 5


def test_events_are_kept_once_per_id_and_not_counted_as_readings(box: Box) -> None:
    put_readings(box, 1)
    box.put_event("event-1", b"first")
    box.put_event("event-2", b"second")
    box.put_event("event-1", b"again")  # the same event id: nothing changes
    events = box.pending_events(0, 50)
    assert [(e.id, e.payload) for e in events] == [("event-1", b"first"), ("event-2", b"second")]
    assert events[0].seq < events[1].seq
    assert [e.id for e in box.pending_events(events[0].seq, 50)] == ["event-2"]
    assert [e.id for e in box.pending_events(0, 1)] == ["event-1"]
    assert box.depth() == 1


def test_an_acknowledgement_deletes_readings_and_events_and_names_what_was_still_there(box: Box) -> None:
    ids = put_readings(box, 3)
    box.put_event("event-1", b"e")
    assert box.acknowledge([ids[0], "event-1", "never-stored", ids[2]]) == [ids[0], "event-1", ids[2]]
    assert [e.id for e in box.pending(0, 50)] == [ids[1]]
    assert box.pending_events(0, 50) == []
    assert box.depth() == 1
    assert box.acknowledge([ids[0], "event-1"]) == []  # acknowledged twice: gone the first time


def test_the_same_measurement_put_again_keeps_its_first_id(box: Box) -> None:
    first, again = str(uuid7()), str(uuid7())
    assert tuple(box.put(first, b"x", dedup=b"cuff|2a35|bytes")) == (first, True)
    assert tuple(box.put(again, b"x", dedup=b"cuff|2a35|bytes")) == (first, False)
    assert [e.id for e in box.pending(0, 50)] == [first]
    assert box.depth() == 1
    box.acknowledge([first])
    assert tuple(box.put(str(uuid7()), b"x", dedup=b"cuff|2a35|bytes")) == (first, False)  # also once sent
    assert box.depth() == 0
