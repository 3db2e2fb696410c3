"""What the pages show, kept current by the pipeline's listeners: the latest reading per measurement
kind, the latest questionnaire, and the last reading of each device. In memory only; after a restart it
starts again from the pipeline's (sealed) history. A version number that grows on every change lets a
page wait for the next change (long polling) instead of asking again and again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.readings import Pipeline, Reading
from zoning import CONTROL_ADVICE, EMERGENCY, QUESTIONNAIRE, Answers, Assessment, Zone


@dataclass(frozen=True)
class Latest:
    kind: str  # a measurement kind, or "questionnaire"
    zone: Zone
    values: tuple[tuple[str, Decimal, str], ...]  # component, value, UCUM unit
    answers: tuple[tuple[str, str], ...]
    at: datetime
    advice_keys: tuple[str, ...]
    control: tuple[str, ...]


@dataclass(frozen=True)
class DeviceLast:
    at: datetime
    zone: Zone


@dataclass
class LiveState:
    """What the pages show live: the latest reading of each kind and each device's last one, with a
    version that grows on every change (long-polling waits on it). Built by `following(pipeline)`.
    """

    latest: dict[str, Latest] = field(default_factory=dict)
    devices: dict[str, DeviceLast] = field(default_factory=dict)
    version: int = 0
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def following(cls, pipeline: Pipeline) -> LiveState:
        """Starts from the kept history, then follows the pipeline."""
        state = cls()
        for past in sorted(pipeline.history, key=lambda p: p.effective):
            # A questionnaire's advice is the plan's symptom advice for its zone (as when it was answered).
            keys = [f"symptoms.{past.zone}" if past.kind == QUESTIONNAIRE else f"{past.kind}.{past.zone}"]
            if past.control:
                keys.append(CONTROL_ADVICE)
            if past.zone == Zone.RED:
                keys.append(EMERGENCY)
            state.latest[past.kind.value] = Latest(
                past.kind.value, past.zone, tuple((n, v, "") for n, v in past.values.items()), (), past.effective,
                tuple(keys), ("",) if past.control else ())
        pipeline.readings.subscribe(state.on_reading)
        pipeline.questionnaires.subscribe(state.on_answers)
        pipeline.waiting_changed.subscribe(state.touch)
        return state

    def on_reading(self, reading: Reading, assessment: Assessment) -> None:
        m = reading.measurement
        previous = self.latest.get(m.kind.value)
        if previous is None or previous.at <= reading.effective:  # a record fetched late does not replace a newer one
            self.latest[m.kind.value] = Latest(
                m.kind.value, assessment.zone,
                tuple((name, q.value, q.unit) for name, q in m.components.items()), (), reading.effective,
                assessment.advice_keys, assessment.control)
        self.devices[reading.device.address] = DeviceLast(reading.effective, assessment.zone)
        self.touch()

    def on_answers(self, _record_id: str, answers: Answers, assessment: Assessment) -> None:
        self.latest["questionnaire"] = Latest(
            "questionnaire", assessment.zone, (), tuple(answers.answers.items()), answers.answered,
            assessment.advice_keys, ())
        self.touch()

    def touch(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """The server is stopping: every waiting page gets its answer now."""
        self.closed = True
        self._changed.set()

    async def wait_change(self, since: int, timeout_s: float) -> int:
        """The version once it differs from `since`, or the same after `timeout_s` (or when closing)."""
        if self.version != since or self.closed:
            return self.version
        changed = self._changed
        try:
            async with asyncio.timeout(timeout_s):
                await changed.wait()
        except TimeoutError:
            pass
        return self.version
