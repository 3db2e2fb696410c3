"""The unassigned-weighing queue is durable and sealed; the patient's answer decides, nothing guesses.
Questionnaire answers are stored sealed as readings of their own type with their zone."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.measurement import MeasurementKind
from drivers.uuids import WEIGHT_MEASUREMENT
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox, load_or_create_key
from hardware_sims import encoding
from tests.support import take
from zoning import Answers, standard_plan

SCALE = "F0:5E:1A:00:00:03"
OSLO = ZoneInfo("Europe/Oslo")


def weighing(kg: str, user: int | None, when: datetime) -> bytes:
    """Weight Measurement (0x2A9D) in kg with a time stamp and, if given, a user id: encoded here, not by
    the drivers."""
    flags = 0x02 | (0x04 if user is not None else 0)
    value = bytes([flags]) + int(Decimal(kg) / Decimal("0.005")).to_bytes(2, "little") + encoding.date_time(when)
    return value + (bytes([user]) if user is not None else b"")


def open_pipeline(tmp_path: Path, profile: str = "standard-heart-failure") -> tuple[Pipeline, SealedOutbox]:
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    plan = standard_plan(load_profile(profile), load_advice(), date(2026, 1, 1))
    device = DeviceSection(address=SCALE, kind=MeasurementKind.BODY_WEIGHT, serial="SCALE1", user=1)
    return Pipeline(patient="p-1", devices={SCALE: device}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5)), outbox


def stored(outbox: SealedOutbox) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in outbox.pending(0, 100)]


async def test_an_unassigned_weighing_survives_a_restart_sealed_and_goes_on_only_when_confirmed(tmp_path: Path) -> None:
    now = datetime.now(OSLO).replace(tzinfo=None, microsecond=0)
    pipeline, outbox = open_pipeline(tmp_path)
    assert await take(pipeline, SCALE, WEIGHT_MEASUREMENT, weighing("82.4", None, now)) is None
    # The scale sends its memory again: asked once, not twice.
    await take(pipeline, SCALE, WEIGHT_MEASUREMENT, weighing("82.4", None, now))
    assert len(pipeline.unassigned) == 1 and stored(outbox) == []
    outbox.close()
    raw = (tmp_path / "outbox.sqlite3").read_bytes()
    assert weighing("82.4", None, now).hex().encode() not in raw and b"82.4" not in raw  # sealed
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM unassigned").fetchone() == (1,)

    pipeline, outbox = open_pipeline(tmp_path)  # a restart: the question is still there
    await pipeline.start()
    [waiting] = pipeline.unassigned
    assert waiting.measurement.components["weight"].value == Decimal("82.4")
    reading = await pipeline.confirm_unassigned(waiting.id)
    assert reading is not None
    [sent] = stored(outbox)
    assert sent["type"] == "body_weight" and sent["components"]["weight"]["value"] == 82.4  # type: ignore[index]
    # The patient's first weighing: judged, but with nothing earlier to compare it with (issue 9.5).
    assert sent["assessment"]["zone"] == "unassessed"  # type: ignore[index]
    assert pipeline.unassigned == []
    with pytest.raises(KeyError):  # answered already: a second click changes nothing
        await pipeline.confirm_unassigned(waiting.id)
    outbox.close()
    pipeline, outbox = open_pipeline(tmp_path)
    assert pipeline.unassigned == [] and len(stored(outbox)) == 1
    outbox.close()


async def test_a_rejected_weighing_is_deleted_and_never_becomes_a_reading(tmp_path: Path) -> None:
    now = datetime.now(OSLO).replace(tzinfo=None, microsecond=0)
    pipeline, outbox = open_pipeline(tmp_path)
    changes: list[int] = []
    pipeline.waiting_changed.subscribe(lambda: changes.append(1))
    await take(pipeline, SCALE, WEIGHT_MEASUREMENT, weighing("61.2", None, now))
    await take(pipeline, SCALE, WEIGHT_MEASUREMENT, weighing("58.0", 2, now))  # another user's slot
    [waiting] = pipeline.unassigned
    await pipeline.reject_unassigned(waiting.id)
    assert pipeline.unassigned == [] and stored(outbox) == [] and pipeline.history == []
    await take(pipeline, SCALE, WEIGHT_MEASUREMENT, weighing("61.2", None, now))  # sent again: not asked again
    assert pipeline.unassigned == []
    assert pipeline.counts["other_user"] == 1 and pipeline.counts["unassigned_rejected"] == 1
    assert len(changes) == 2
    outbox.close()
    pipeline, outbox = open_pipeline(tmp_path)
    assert pipeline.unassigned == []
    outbox.close()


async def test_questionnaire_answers_are_judged_stored_sealed_and_told_to_listeners(tmp_path: Path) -> None:
    pipeline, outbox = open_pipeline(tmp_path, "standard-copd")
    heard: list[str] = []
    pipeline.questionnaires.subscribe(lambda record_id, _answers, assessment: heard.append(assessment.zone.value))
    answers = Answers(answered=datetime.now(UTC), answers={"breathlessness": "much_worse", "cough": "usual"})
    record_id, assessment = await pipeline.on_answers(answers)
    assert assessment.zone.value == "red" and heard == ["red"]
    [sent] = stored(outbox)
    assert sent["id"] == record_id and sent["type"] == "questionnaire" and sent["components"] == {}
    assert sent["answers"] == {"breathlessness": "much_worse", "cough": "usual"}
    assert "emergency" in sent["assessment"]["advice"]  # type: ignore[index]
    outbox.close()
    assert b"much_worse" not in (tmp_path / "outbox.sqlite3").read_bytes()


def test_the_unassigned_queue_keeps_at_most_its_bound(tmp_path: Path) -> None:
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    for i in range(5):
        assert outbox.park(f"id-{i}", f"weighing {i}".encode(), keep=3)
    assert not outbox.park("id-4", b"again", keep=3)
    assert [record_id for record_id, _ in outbox.parked()] == ["id-2", "id-3", "id-4"]
    assert outbox.unpark("id-3") and not outbox.unpark("id-3")
    outbox.rotate()
    assert outbox.retire_unused_keys() == []  # the waiting weighings still need the first key
    outbox.close()
