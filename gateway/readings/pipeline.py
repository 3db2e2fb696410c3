"""GATT value -> Measurement -> Reading -> Assessment -> sealed in the outbox -> listeners.

A reading is "taken" when the outbox commit returns; listeners (the local page, the sync loop) hear
of it only after that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from drivers import uuids
from drivers.decoders import decode
from drivers.device_info import decode_current_time
from drivers.gatt_time import date_time
from drivers.measurement import DecodeError, Measurement, NotFinal
from gateway.readings.answers import answers_to_wire
from gateway.readings.clock import correct_live_time, correct_with_device_clock
from gateway.readings.ids import uuid7
from gateway.readings.reading import DeviceRef, Reading, to_wire
from gateway.settings import DeviceSection
from gateway.storage import PutResult, SealedOutbox
from sync.outbox import OutboxUnavailable
from zoning.engine import assess_answers, assess_reading, remembered
from zoning.history import PastReading
from zoning.models import Assessment
from zoning.plan import Plan
from zoning.questionnaire import Answers

log = logging.getLogger(__name__)

ReadingListener = Callable[[Reading, Assessment], None]


# Zoning looks back this far (trends, control jumps, the schedule, the 14-day baseline).
HISTORY_DAYS = 90
UNASSIGNED_KEPT = 50


class _Pending(NamedTuple):
    reading: Reading
    assessment: Assessment
    payload: bytes
    dedup: str | None
    past: PastReading


def dedup_key(device: DeviceRef, characteristic: str, data: bytes, measurement: Measurement) -> str | None:
    """The same physical measurement fetched again must keep its id. Without a device time stamp two
    identical values may be two measurements, so only time-stamped ones are deduplicated."""
    if measurement.device_time is None:
        return None
    return hashlib.sha256(f"{device.id}|{characteristic}|".encode() + data).hexdigest()


class Unassigned(NamedTuple):
    """A reading from a shared device whose user it could not tell: sealed in the outbox until the
    patient answers "was this you?" (yes: it goes on as a reading; no: it is deleted). Never guessed."""

    id: str
    address: str
    characteristic: str
    data: bytes
    measurement: Measurement
    received: datetime

    def payload(self) -> bytes:
        return json.dumps({"address": self.address, "characteristic": self.characteristic,
                           "data": self.data.hex(), "received": self.received.isoformat()}).encode()

    @classmethod
    def from_payload(cls, record_id: str, payload: bytes) -> Unassigned:
        d = json.loads(payload)
        data = bytes.fromhex(d["data"])
        return cls(record_id, d["address"], d["characteristic"], data, decode(d["characteristic"], data),
                   datetime.fromisoformat(d["received"]))


UnassignedListener = Callable[[], None]
AnswersListener = Callable[[str, Answers, Assessment], None]


class Pipeline:
    def __init__(
        self,
        *,
        patient: str,
        devices: Mapping[str, DeviceSection],
        plan: Plan,
        outbox: SealedOutbox,
        zone: ZoneInfo,
        clock_tolerance: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        held_limit: int = 1000,
    ) -> None:
        self._patient = patient
        self._devices = {address.upper(): device for address, device in devices.items()}
        self.plan = plan
        self._outbox = outbox
        self._zone = zone
        self._tolerance = clock_tolerance
        self._now = now
        self.listeners: list[ReadingListener] = []
        self.counts: Counter[str] = Counter()
        self.unprovisioned: Counter[str] = Counter()
        self.unassigned_listeners: list[UnassignedListener] = []
        self.answers_listeners: list[AnswersListener] = []
        # Gateway time minus device time, read from the device's clock at the start of its session.
        self.clock_offsets: dict[str, timedelta] = {}
        # Readings waiting in memory while the outbox cannot be written (disk full, I/O error).
        self._held: deque[_Pending] = deque()
        self._held_limit = held_limit
        self.storage_fault: str | None = None
        since = (now() - timedelta(days=HISTORY_DAYS)).timestamp()
        self.history: list[PastReading] = [PastReading.model_validate_json(b) for b in outbox.recall(since)]
        self._waiting: dict[str, Unassigned] = {}
        # Weighings already answered (this run): a scale that sends its memory again is not asked twice.
        self._answered: set[tuple[str, str, bytes]] = set()
        for record_id, payload in outbox.parked():
            try:
                self._waiting[record_id] = Unassigned.from_payload(record_id, payload)
            except (ValueError, KeyError, DecodeError) as exc:
                log.error("an unassigned weighing kept in the outbox cannot be read and is left out: %s", exc)

    @property
    def unassigned(self) -> list[Unassigned]:
        """Shared-scale weighings waiting for the patient's answer, oldest first."""
        return list(self._waiting.values())

    @property
    def held(self) -> int:
        return len(self._held)

    async def on_gatt_value(self, address: str, characteristic: str, data: bytes) -> Reading | None:
        """Entry point for every value a device source delivers."""
        received = self._now()
        provisioned = self._devices.get(address.upper())
        if provisioned is None:
            # A neighbour's device must never write into this patient's record.
            self.unprovisioned[address.upper()] += 1
            self.counts["unprovisioned"] += 1
            return None
        if characteristic in (uuids.CURRENT_TIME, uuids.DATE_TIME):
            self._device_clock(provisioned.address, characteristic, data, received)
            return None
        try:
            measurement = decode(characteristic, data)
        except NotFinal:
            self.counts["not_final"] += 1
            return None
        except DecodeError as exc:
            self.counts["rejected"] += 1
            log.warning("rejected a value from device %s (%s): %s", address, characteristic[4:8], exc)
            return None
        if measurement.kind != provisioned.kind:
            self.counts["rejected"] += 1
            log.warning("device %s is provisioned as %s but sent %s", address, provisioned.kind, measurement.kind)
            return None
        if provisioned.user is not None and measurement.user_id != provisioned.user:
            if measurement.user_id is None:
                # A shared device that cannot say whose weight this is: ask, never guess from the value.
                await self._park(Unassigned(uuid7().hex, provisioned.address, characteristic, data, measurement,
                                            received))
            else:
                self.counts["other_user"] += 1  # another member of the household: not this patient's
            return None
        return await self._take(provisioned, characteristic, data, measurement, received)

    async def _take(self, provisioned: DeviceSection, characteristic: str, data: bytes, measurement: Measurement,
                    received: datetime, dedup: str | None = None) -> Reading | None:
        """The patient's measurement: identity, time, zone, then the outbox."""
        device = DeviceRef(address=provisioned.address, model=provisioned.model, serial=provisioned.serial)
        offset = self.clock_offsets.get(provisioned.address)
        if offset is None:
            when = correct_live_time(measurement.device_time, received, self._zone, self._tolerance)
        else:
            when = correct_with_device_clock(measurement.device_time, offset, received, self._zone, self._tolerance)
        reading = Reading(
            id=uuid7(),
            patient=self._patient,
            device=device,
            measurement=measurement,
            effective=when.effective,
            time_source=when.source,
            clock_correction_s=when.correction_s,
            received=received,
        )
        # Readings held for the disk are history too: the patient took them, in this order.
        history = [*self.history, *(held.past for held in self._held)]
        assessment = assess_reading(measurement, reading_id=str(reading.id), effective=reading.effective,
                                    history=history, plan=self.plan, tz=self._zone)
        item = _Pending(
            reading, assessment, to_wire(reading, assessment).model_dump_json().encode(),
            dedup_key(device, characteristic, data, measurement) or dedup,
            remembered(str(reading.id), measurement, reading.effective, assessment),
        )
        if self._held:  # nothing may overtake readings already waiting for the disk
            self._hold(item)
            return None
        # Shielded: once the outbox has the reading, history and listeners (the page, the uplink) must hear
        # of it even if the device session that delivered it is cancelled meanwhile (a link dropped in the
        # middle); otherwise the device sends it again, it counts as a duplicate, and no page ever shows it.
        return await asyncio.shield(self._store(item))

    async def _store(self, item: _Pending) -> Reading | None:
        try:
            put = await self._put(item)
        except OutboxUnavailable as exc:
            self.storage_fault = str(exc)
            log.error("%s; holding readings in memory until it can", exc)
            self._hold(item)
            return None
        return self._taken(item, put)

    async def _park(self, item: Unassigned) -> None:
        same = (item.address, item.characteristic, item.data)
        if item.measurement.device_time is not None and (same in self._answered or any(
                (w.address, w.characteristic, w.data) == same for w in self._waiting.values())):
            return  # the same weighing sent again (a scale resends its memory): asked once
        try:
            await asyncio.to_thread(self._outbox.park, item.id, item.payload(), UNASSIGNED_KEPT)
        except OutboxUnavailable as exc:
            # Kept in memory only: the question is still asked; a restart before the answer loses it.
            log.error("%s; the weighing waits for the patient's answer in memory only", exc)
        self._waiting[item.id] = item
        self.counts["unassigned"] += 1
        while len(self._waiting) > UNASSIGNED_KEPT:
            del self._waiting[next(iter(self._waiting))]
        self._unassigned_changed()

    def _unassigned_changed(self) -> None:
        for listener in self.unassigned_listeners:
            listener()

    async def confirm_unassigned(self, record_id: str) -> Reading | None:
        """The patient said "yes, this was me": the weighing goes on as their reading, through the same
        steps as any other, judged with their history. Idempotent: a repeated confirm stores nothing new.

        Raises KeyError if no such weighing waits; OutboxUnavailable if it cannot be stored now (it then
        keeps waiting, so the patient can answer again)."""
        item = self._waiting[record_id]
        provisioned = self._devices.get(item.address.upper())
        if provisioned is None:  # the scale was de-provisioned since: it is not the patient's any more
            raise KeyError(record_id)
        before = self.counts["stored"] + self.counts["duplicate"]
        reading = await self._take(provisioned, item.characteristic, item.data, item.measurement, item.received,
                                   dedup=f"unassigned|{record_id}")
        if reading is None and self.counts["stored"] + self.counts["duplicate"] == before:
            # Held in memory for the disk, not stored: keep the question until it is.
            raise OutboxUnavailable(self.storage_fault or "the outbox cannot store the weighing now")
        await asyncio.to_thread(self._outbox.unpark, record_id)
        del self._waiting[record_id]
        self._answered.add((item.address, item.characteristic, item.data))
        self.counts["unassigned_confirmed"] += 1
        self._unassigned_changed()
        return reading

    async def reject_unassigned(self, record_id: str) -> None:
        """The patient said "no, not me": deleted, never the patient's reading. Raises KeyError if no
        such weighing waits."""
        if record_id not in self._waiting:
            raise KeyError(record_id)
        await asyncio.to_thread(self._outbox.unpark, record_id)
        item = self._waiting.pop(record_id)
        self._answered.add((item.address, item.characteristic, item.data))
        self.counts["unassigned_rejected"] += 1
        self._unassigned_changed()

    async def on_answers(self, answers: Answers) -> tuple[str, Assessment]:
        """The patient's questionnaire: judged by the plan in force, sealed in the outbox as a reading of
        its own type, then told to the listeners. Raises OutboxUnavailable if it was not stored (the page
        says so and the patient can send it again)."""
        assessment = assess_answers(answers, history=self.history, plan=self.plan, tz=self._zone)
        record_id = uuid7()
        wire = answers_to_wire(record_id, self._patient, answers, assessment, self._now())
        await asyncio.to_thread(self._outbox.put, str(record_id), wire.model_dump_json().encode())
        self.counts["questionnaires"] += 1
        log.info("stored questionnaire %s (%s)", record_id, assessment.zone)
        for listener in self.answers_listeners:
            listener(str(record_id), answers, assessment)
        return str(record_id), assessment

    def _device_clock(self, address: str, characteristic: str, data: bytes, received: datetime) -> None:
        """A device's clock as read before the gateway sets it: the offset that dates its stored records."""
        try:
            now = decode_current_time(data) if characteristic == uuids.CURRENT_TIME else date_time(data)
        except DecodeError as exc:
            log.warning("device %s sent an unreadable clock: %s", address, exc)
            now = None
        if now is None:  # the clock was never set: stored time stamps mean nothing, judge them live
            self.clock_offsets.pop(address, None)
            return
        self.clock_offsets[address] = received - now.replace(microsecond=0, tzinfo=self._zone).astimezone(UTC)

    async def _put(self, item: _Pending) -> PutResult:
        remember = (item.past.effective.timestamp(), item.past.model_dump_json().encode())
        return await asyncio.to_thread(self._outbox.put, str(item.reading.id), item.payload, item.dedup, remember)

    def _hold(self, item: _Pending) -> None:
        if len(self._held) >= self._held_limit:
            self.counts["refused_storage_full"] += 1
            log.error(
                "outbox unavailable and %d readings already held in memory: a new reading was NOT taken "
                "(a device with a memory keeps it and sends it again)", len(self._held),
            )
            return
        self._held.append(item)
        self.counts["held"] += 1

    def _taken(self, item: _Pending, put: PutResult) -> Reading | None:
        if not put.new:
            self.counts["duplicate"] += 1
            return None
        self.counts["stored"] += 1
        self.history.append(item.past)
        cutoff = item.past.effective - timedelta(days=HISTORY_DAYS)
        if self.history[0].effective < cutoff:
            self.history = [p for p in self.history if p.effective >= cutoff]
            try:
                self._outbox.forget_before(cutoff.timestamp())
            except OutboxUnavailable as exc:
                log.warning("%s; tried again with the next reading", exc)
        log.info("stored reading %s (%s, %s)", item.reading.id, item.reading.measurement.kind, item.assessment.zone)
        for listener in self.listeners:
            listener(item.reading, item.assessment)
        return item.reading

    async def store_held(self) -> None:
        """Try to commit the readings held in memory, in order; stop at the first that still fails."""
        while self._held:
            try:
                put = await self._put(self._held[0])
            except OutboxUnavailable as exc:
                self.storage_fault = str(exc)
                return
            self._taken(self._held.popleft(), put)
        if self.storage_fault:
            log.warning("outbox writable again; every held reading is stored")
        self.storage_fault = None

    async def keep_storing_held(self, interval_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self._held:
                await self.store_held()
