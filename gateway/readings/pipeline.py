"""GATT value -> Measurement -> Reading -> Assessment -> sealed in the outbox -> listeners.

A reading is "taken" when the outbox commit returns; listeners (the local page, the sync loop) hear
of it only after that. The contract is `Pipeline`'s docstring.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from drivers import (
    DecodeError,
    Delivery,
    DeviceFlag,
    Measurement,
    MeasurementKind,
    NotFinal,
    date_time,
    decode,
    decode_current_time,
    uuids,
)
from gateway.listeners import Listeners
from gateway.readings.answers import answers_to_wire
from gateway.readings.clock import LocalTime, clock_offset, correct_live_time, correct_with_device_clock
from gateway.readings.ids import uuid7
from gateway.readings.reading import DeviceRef, Reading, to_wire
from gateway.settings import DeviceSection
from gateway.storage import OutboxUnavailable, PutResult, SealedOutbox
from protocol import EventKind
from zoning import (
    AT_LEAST,
    LOOKBACK,
    QUESTIONNAIRE,
    Answers,
    Assessment,
    PastReading,
    Plan,
    assess_answers,
    assess_reading,
    local_date,
    remembered,
    remembered_answers,
)

log = logging.getLogger(__name__)

EventDetail = dict[str, str | int | float]

# Device findings the nurse must hear of at once, as an event, not only when the reading is looked at.
URGENT_FLAGS: dict[DeviceFlag, tuple[EventKind, str]] = {
    DeviceFlag.ABOVE_MEASURING_RANGE: ("glucose_out_of_range", "above"),  # the meter's HI
    DeviceFlag.BELOW_MEASURING_RANGE: ("glucose_out_of_range", "below"),  # the meter's LO
}


# Zoning looks back this far (trends, control jumps, the schedule, the 14-day baseline).
HISTORY_DAYS = 90
UNASSIGNED_KEPT = 50
# Questionnaires answered (this run) by the id their form was rendered with: a resend gets the same answer.
ANSWERS_REMEMBERED = 64
LATEST_DAY_KEPT = 200
# A kind's window holds at most this many readings (the latest): beyond 30 a day for 33 days a trend
# looks at the latest 1,000 only. Memory per reading stays bounded whatever is stored.
WINDOW_KEPT = 1000
# History is pruned (by when it was stored) at most this often, off the event loop.
PRUNE_EVERY_S = 3600.0


class _Pending(NamedTuple):
    reading: Reading
    assessment: Assessment
    payload: bytes
    dedup: bytes | None
    past: PastReading


def dedup_key(device: DeviceRef, characteristic: str, data: bytes, measurement: Measurement) -> bytes | None:
    """The same physical measurement fetched again must keep its id. Without a device time stamp two
    identical values may be two measurements, so only time-stamped ones are deduplicated. The outbox
    keeps only a keyed tag of this (an unkeyed digest of a cuff's few values is reversed by brute force)."""
    if measurement.device_time is None:
        return None
    return f"{device.id}|{characteristic}|".encode() + data


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



class Pipeline:
    """From a device's value to a stored, judged reading, for one patient. One entry point: `deliver`.

    `deliver(address, characteristic, value)` (the `drivers.Deliver` every device source is given):

    - **Whose**: only the provisioned devices' values are taken (a neighbour's are counted in
      `unprovisioned`), only of the provisioned kind, and on a shared device only the patient's user
      slot; a weighing whose user the scale cannot tell waits in `unassigned` for the patient's
      answer (`confirm_unassigned` / `reject_unassigned`), never guessed.
    - **Identity**: a new reading gets a UUIDv7; the same time-stamped measurement delivered again keeps
      its first id (a keyed dedup tag in the outbox), is counted as a duplicate and told to no one again.
    - **Time**: corrected by the device's clock offset read at the start of its session, or live, never
      later than the receive time; a time the gateway cannot trust is marked in `time_source`.
    - **Zoning**: judged by `zoning` against the kind's window read from the outbox, this day's readings
      held in memory (`history`) and readings held for the disk, with the plan in force (`plan`,
      changed only through `use_plan`).
    - **Sealed before told**: the reading and its history entry are committed to the outbox in one
      transaction; only then are `events` (urgent device flags: glucose HI/LO) and `readings` told and
      `STORED` returned. A commit that has begun finishes and is told even if the caller is cancelled.
      Listeners cannot fail the delivery (`gateway.listeners`).
    - **Storage fault** (`OutboxUnavailable`: disk full or failing): the reading is held in memory, in
      order, up to `held_limit` (beyond it refused and counted); `storage_fault` says why and `deliver`
      returns `NOT_STORED`, so a device with a memory keeps the value. Held readings are told to no one
      until `store_held` (`keep_storing_held`) commits them; later readings wait behind them.

    The return value says whether the device may forget the value (`Delivery`). Questionnaires come in
    through `on_answers`, with the same order: judged, sealed, then `questionnaires` told.

    Constructing a pipeline reads nothing; `start()` (or the blocking `load()`) reads the latest day of
    each kind and the waiting weighings, and `deliver` starts it if no one has. In memory it keeps of each
    kind only its latest local day, at most LATEST_DAY_KEPT readings, exactly what start-up reads.
    """

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
        self._plan = plan
        self._outbox = outbox
        self._zone = zone
        self._tolerance = clock_tolerance
        self._now = now
        # Who hears of what (each `subscribe(listener)` returns its unsubscribe; a failing listener is logged).
        self.readings: Listeners[[Reading, Assessment]] = Listeners("stored reading")  # once it is stored
        self.questionnaires: Listeners[[str, Answers, Assessment]] = Listeners("stored questionnaire")
        self.waiting_changed: Listeners[[]] = Listeners("unassigned weighings")  # asked, answered or dropped
        self.events: Listeners[[EventKind, EventDetail]] = Listeners("urgent event")  # glucose HI/LO
        self.counts: Counter[str] = Counter()
        self.unprovisioned: Counter[str] = Counter()
        # Devices that report user ids but were provisioned without the patient's slot -> the user id seen.
        self.shared_without_slot: dict[str, int] = {}
        # Gateway time minus device time, read from the device's clock at the start of its session.
        self.clock_offsets: dict[str, timedelta] = {}
        # Per device, the local time of its last record: orders a stored record of October's repeated hour.
        self.last_local: dict[str, LocalTime] = {}
        # Readings waiting in memory while the outbox cannot be written (disk full, I/O error).
        self._held: deque[_Pending] = deque()
        self._held_limit = held_limit
        self.storage_fault: str | None = None
        self._next_prune = 0.0  # monotonic time
        # The latest local day of each kind (what the schedule and the status need); a kind's longer
        # window is read from the outbox per reading, so memory and start-up do not grow with history.
        # Read by `start` (or `load`), not here: constructing a pipeline touches no file.
        self.history: list[PastReading] = []
        self._waiting: dict[str, Unassigned] = {}
        self._loaded = False
        self._loading = asyncio.Lock()
        # Weighings already answered (this run): a scale that sends its memory again is not asked twice.
        self._answered: set[tuple[str, str, bytes]] = set()
        # Questionnaire form id and answers -> what its first post was answered (record id, assessment).
        self._questionnaires: OrderedDict[str, tuple[str, Assessment]] = OrderedDict()

    def load(self) -> None:
        """Read what the pipeline keeps in memory from the outbox: the latest day of each kind and the
        weighings waiting for the patient's answer. Blocking: call it before the event loop runs, or
        `await start()`. Once only; later calls do nothing."""
        if self._loaded:
            return
        self.history = self._latest_days()
        for record_id, payload in self._outbox.parked():
            try:
                self._waiting[record_id] = Unassigned.from_payload(record_id, payload)
            except (ValueError, KeyError, DecodeError) as exc:
                log.error("an unassigned weighing kept in the outbox cannot be read and is left out: %s", exc)
        self._loaded = True

    async def start(self) -> None:
        """`load`, off the event loop. `deliver` and the patient's answers call it if no one has;
        raises OutboxUnavailable if the outbox cannot be read (nothing is taken then)."""
        if self._loaded:
            return
        async with self._loading:
            if not self._loaded:
                await asyncio.to_thread(self.load)

    def _latest_days(self) -> list[PastReading]:
        recent: list[PastReading] = []
        # The questionnaire too: a red form changes the schedule like a reading, also after a restart.
        for kind in (*MeasurementKind, QUESTIONNAIRE):
            latest = self._outbox.latest_effective(kind.value)
            if latest is None:
                continue
            day = datetime.fromtimestamp(latest, self._zone).replace(hour=0, minute=0, second=0, microsecond=0)
            # At most LATEST_DAY_KEPT of a kind's latest day: enough for its worst zone, bounded in memory.
            recent += [PastReading.model_validate_json(b) for b in self._outbox.recall(
                kind.value, since=day.timestamp(), until=latest, limit=LATEST_DAY_KEPT)]
        return recent

    def _remember_recent(self, past: PastReading) -> None:
        """Keep `history` as start-up reads it (`_latest_days`): of each kind only its latest local day,
        and of that day at most LATEST_DAY_KEPT readings, the latest by time. Memory and the time to
        judge a reading stay bounded however many readings one day brings."""
        same = [p for p in self.history if p.kind == past.kind]
        day = local_date(past.effective, self._zone)
        latest = local_date(max(p.effective for p in same), self._zone) if same else None
        if latest is None or day > latest:
            self.history = [p for p in self.history if p.kind != past.kind] + [past]
        elif day == latest:
            self.history.append(past)
            if len(same) >= LATEST_DAY_KEPT:
                self.history.remove(min((*same, past), key=lambda p: p.effective))

    def past(self, kind: MeasurementKind, effective: datetime) -> list[PastReading]:
        """What zoning reads of `kind` to judge a reading taken at `effective` (blocking: call off the loop)."""
        return [PastReading.model_validate_json(b) for b in self._outbox.recall(
            kind.value, since=(effective - LOOKBACK).timestamp(), until=effective.timestamp(), at_least=AT_LEAST,
            limit=WINDOW_KEPT)]

    @property
    def plan(self) -> Plan:
        """The plan in force: what the next reading and questionnaire are judged by."""
        return self._plan

    def use_plan(self, plan: Plan) -> None:
        """Judge from now on by `plan`; readings already stored keep the plan they named."""
        self._plan = plan

    @property
    def unassigned(self) -> list[Unassigned]:
        """Shared-scale weighings waiting for the patient's answer, oldest first."""
        return list(self._waiting.values())

    @property
    def held(self) -> int:
        return len(self._held)

    async def deliver(self, address: str, characteristic: str, data: bytes) -> Delivery:
        """Entry point for device sources (`drivers.Deliver`): take the value and say whether the device
        may now forget it — only once it is committed to the outbox (docs/ble.md)."""
        await self.start()
        return (await self._receive(address, characteristic, data))[1]

    async def _receive(self, address: str, characteristic: str, data: bytes) -> tuple[Reading | None, Delivery]:
        """Each step may end the value's way with a count (and a log line where a technician can act)."""
        received = self._now()
        provisioned = self._provisioned(address)
        if provisioned is None:
            return None, Delivery.NOT_STORED  # not ours to tell a device to forget anything
        if characteristic in (uuids.CURRENT_TIME, uuids.DATE_TIME):
            self._device_clock(provisioned.address, characteristic, data, received)
            return None, Delivery.NOT_A_READING
        measurement = self._decode(address, characteristic, data)
        if measurement is None:
            return None, Delivery.NOT_A_READING
        if not await self._is_the_patients(provisioned, characteristic, data, measurement, received):
            return None, Delivery.NOT_STORED  # another user's, or waiting for the patient to claim it
        return await self._take(provisioned, characteristic, data, measurement, received)

    def _provisioned(self, address: str) -> DeviceSection | None:
        """Only the patient's own devices: a neighbour's device must never write into this record."""
        provisioned = self._devices.get(address.upper())
        if provisioned is None:
            self.unprovisioned[address.upper()] += 1
            self.counts["unprovisioned"] += 1
        return provisioned

    def _decode(self, address: str, characteristic: str, data: bytes) -> Measurement | None:
        try:
            return decode(characteristic, data)
        except NotFinal:
            self.counts["not_final"] += 1
        except DecodeError as exc:
            self.counts["rejected"] += 1
            log.warning("rejected a value from device %s (%s): %s", address, characteristic[4:8], exc)
        return None

    async def _is_the_patients(self, provisioned: DeviceSection, characteristic: str, data: bytes,
                               measurement: Measurement, received: datetime) -> bool:
        """The right kind, and on a shared device the patient's user slot; never guessed from the value."""
        address = provisioned.address
        if measurement.kind != provisioned.kind:
            self.counts["rejected"] += 1
            log.warning("device %s is provisioned as %s but sent %s", address, provisioned.kind, measurement.kind)
            return False
        if provisioned.user is None and measurement.user_id is not None:
            # A device that tells users apart, provisioned as if it had one: whose reading is this? A
            # configuration error (status fault) until its slot is provisioned; kept for the patient to confirm.
            if address not in self.shared_without_slot:
                log.error("device %s reports user %d but has no user slot provisioned: set `user` in its "
                          "[[devices]] entry", address, measurement.user_id)
            self.shared_without_slot[address] = measurement.user_id
            await self._park(Unassigned(uuid7().hex, address, characteristic, data, measurement, received))
            return False
        if provisioned.user is not None and measurement.user_id != provisioned.user:
            if measurement.user_id is None:
                # A shared device that cannot say whose weight this is: ask, never guess from the value.
                await self._park(Unassigned(uuid7().hex, address, characteristic, data, measurement, received))
            else:
                self.counts["other_user"] += 1  # another member of the household: not this patient's
            return False
        return True

    async def _take(self, provisioned: DeviceSection, characteristic: str, data: bytes, measurement: Measurement,
                    received: datetime, dedup: bytes | None = None) -> tuple[Reading | None, Delivery]:
        """The patient's measurement: identity, time, zone, then the outbox."""
        reading = self._identify(provisioned, measurement, received)
        return await self._store(await self._judge(reading, characteristic, data, dedup))

    def _identify(self, provisioned: DeviceSection, measurement: Measurement, received: datetime) -> Reading:
        """An id, the patient, the device, and a time that is never later than the receive time."""
        offset = self.clock_offsets.get(provisioned.address)
        previous = self.last_local.get(provisioned.address)
        if offset is None:
            when = correct_live_time(measurement.device_time, received, self._zone, self._tolerance,
                                     previous=previous)
        else:
            when = correct_with_device_clock(measurement.device_time, offset, received, self._zone, self._tolerance,
                                             previous=previous)
        if when.local is not None:
            self.last_local[provisioned.address] = when.local
        return Reading(
            id=uuid7(),
            patient=self._patient,
            device=DeviceRef(address=provisioned.address, model=provisioned.model, serial=provisioned.serial),
            measurement=measurement,
            effective=when.effective,
            time_source=when.source,
            clock_correction_s=when.correction_s,
            received=received,
        )

    async def _judge(self, reading: Reading, characteristic: str, data: bytes, dedup: bytes | None) -> _Pending:
        """The assessment against the kind's history window, and everything the outbox commit needs."""
        m = reading.measurement
        try:
            window = await asyncio.to_thread(self.past, m.kind, reading.effective)
        except OutboxUnavailable as exc:
            log.error("%s; judging this reading without its history", exc)
            window = []
        # Readings held for the disk are history too: the patient took them, in this order.
        history = list({p.id: p for p in [*window, *self.history, *(held.past for held in self._held)]}.values())
        assessment = assess_reading(m, reading_id=str(reading.id), effective=reading.effective,
                                    history=history, plan=self.plan, tz=self._zone)
        return _Pending(
            reading, assessment, to_wire(reading, assessment).model_dump_json().encode(),
            dedup_key(reading.device, characteristic, data, m) or dedup,
            remembered(str(reading.id), m, reading.effective, assessment),
        )

    async def _store(self, item: _Pending) -> tuple[Reading | None, Delivery]:
        """Taken when the outbox commit returns; while the disk cannot take it, held in order in memory."""
        if self._held:  # nothing may overtake readings already waiting for the disk
            self._hold(item)
            return None, Delivery.NOT_STORED
        # Shielded: once the outbox has the reading, history and listeners (the page, the uplink) must hear
        # of it even if the device session that delivered it is cancelled meanwhile (a link dropped in the
        # middle); otherwise the device sends it again, it counts as a duplicate, and no page ever shows it.
        return await asyncio.shield(self._commit(item))

    async def _commit(self, item: _Pending) -> tuple[Reading | None, Delivery]:
        try:
            put = await self._put(item)
        except OutboxUnavailable as exc:
            self.storage_fault = str(exc)
            log.error("%s; holding readings in memory until it can", exc)
            self._hold(item)
            return None, Delivery.NOT_STORED
        return await self._taken(item, put), Delivery.STORED

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
        self.waiting_changed.notify()

    async def confirm_unassigned(self, record_id: str) -> Reading | None:
        """The patient said "yes, this was me": the weighing goes on as their reading, through the same
        steps as any other, judged with their history. Idempotent: a repeated confirm stores nothing new.

        Raises KeyError if no such weighing waits; OutboxUnavailable if it cannot be stored now (it then
        keeps waiting, so the patient can answer again)."""
        await self.start()
        item = self._waiting[record_id]
        provisioned = self._devices.get(item.address.upper())
        if provisioned is None:  # the scale was de-provisioned since: it is not the patient's any more
            raise KeyError(record_id)
        reading, delivery = await self._take(provisioned, item.characteristic, item.data, item.measurement,
                                             item.received, dedup=f"unassigned|{record_id}".encode())
        if delivery is not Delivery.STORED:
            # Held in memory for the disk, not stored: keep the question until it is.
            raise OutboxUnavailable(self.storage_fault or "the outbox cannot store the weighing now")
        await asyncio.to_thread(self._outbox.unpark, record_id)
        del self._waiting[record_id]
        self._answered.add((item.address, item.characteristic, item.data))
        self.counts["unassigned_confirmed"] += 1
        self.waiting_changed.notify()
        return reading

    async def reject_unassigned(self, record_id: str) -> None:
        """The patient said "no, not me": deleted, never the patient's reading. Raises KeyError if no
        such weighing waits."""
        await self.start()
        if record_id not in self._waiting:
            raise KeyError(record_id)
        await asyncio.to_thread(self._outbox.unpark, record_id)
        item = self._waiting.pop(record_id)
        self._answered.add((item.address, item.characteristic, item.data))
        self.counts["unassigned_rejected"] += 1
        self.waiting_changed.notify()

    async def on_answers(self, answers: Answers, answer_id: str | None = None) -> tuple[str, Assessment]:
        """The patient's questionnaire: judged by the plan in force, sealed in the outbox as a reading of
        its own type, then told to the listeners. Raises OutboxUnavailable if it was not stored (the page
        says so and the patient can send it again).

        `answer_id` is the id the form was rendered with: the same form posted again with the same answers
        (a reload, a second tap, a retry after an error) is answered like the first post and stores nothing;
        the outbox keeps a keyed tag of it, so a resend after a restart is not stored twice either. The
        same form sent with other answers (back, changed, sent again) is new answers, stored."""
        await self.start()
        key = None if answer_id is None else f"questionnaire|{answer_id}|" + json.dumps(answers.answers, sort_keys=True)
        if key is not None and key in self._questionnaires:
            self.counts["questionnaires_resent"] += 1
            return self._questionnaires[key]
        assessment = assess_answers(answers, history=self.history, plan=self.plan, tz=self._zone)
        record_id = uuid7()
        wire = answers_to_wire(record_id, self._patient, answers, assessment, self._now())
        past = remembered_answers(str(record_id), answers, assessment)
        remember = (QUESTIONNAIRE.value, past.effective.timestamp(), past.model_dump_json().encode())
        put = await asyncio.to_thread(self._outbox.put, str(record_id), wire.model_dump_json().encode(), key,
                                      remember)
        if key is not None:
            self._questionnaires[key] = (put.id, assessment)
            while len(self._questionnaires) > ANSWERS_REMEMBERED:
                self._questionnaires.popitem(last=False)
        if not put.new:  # posted before this run: stored then, under its first id
            self.counts["questionnaires_resent"] += 1
            return put.id, assessment
        self.counts["questionnaires"] += 1
        self._remember_recent(past)
        # No zone or value at INFO: the journal on the card is read without any key (issue 19.10).
        log.info("stored questionnaire %s", record_id)
        self.questionnaires.notify(str(record_id), answers, assessment)
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
        self.clock_offsets[address] = clock_offset(now.replace(microsecond=0), received, self._zone)
        self.last_local.pop(address, None)  # a new session: its records are ordered among themselves

    async def _put(self, item: _Pending) -> PutResult:
        remember = (item.past.kind.value, item.past.effective.timestamp(), item.past.model_dump_json().encode())
        return await asyncio.to_thread(self._outbox.put, str(item.reading.id), item.payload, item.dedup, remember)

    def _hold(self, item: _Pending) -> None:
        if item.dedup is not None and any(held.dedup == item.dedup for held in self._held):
            # A device sending its memory again while the disk is down (it keeps what was not stored).
            self.counts["duplicate"] += 1
            return
        if len(self._held) >= self._held_limit:
            self.counts["refused_storage_full"] += 1
            log.error(
                "outbox unavailable and %d readings already held in memory: a new reading was NOT taken "
                "(a device with a memory keeps it and sends it again)", len(self._held),
            )
            return
        self._held.append(item)
        self.counts["held"] += 1

    async def _taken(self, item: _Pending, put: PutResult) -> Reading | None:
        if not put.new:
            self.counts["duplicate"] += 1
            return None
        self.counts["stored"] += 1
        self._remember_recent(item.past)
        await self._prune()
        # No zone or value at INFO: the journal on the card is read without any key (issue 19.10).
        log.info("stored reading %s (%s)", item.reading.id, item.reading.measurement.kind)
        self._urgent(item.reading)
        # The reading is stored whatever a listener does; one failing (a printer, a page) must not keep
        # the others, the uplink among them, from hearing of it.
        self.readings.notify(item.reading, item.assessment)
        return item.reading

    async def _prune(self) -> None:
        """Forget history stored more than 90 days ago by the gateway's clock, never by a reading's own
        claimed time (issue 9.1: a record dated 2052 must not make the real history look old)."""
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        # The clock the reading ids (and so the stored times) come from, not an injected or device one.
        cutoff = time.time() - timedelta(days=HISTORY_DAYS).total_seconds()
        try:
            await asyncio.to_thread(self._outbox.forget_stored_before, cutoff)
        except OutboxUnavailable as exc:
            log.warning("%s; tried again later", exc)

    def _urgent(self, reading: Reading) -> None:
        """Once the reading is stored (so the event can point at it), an event for each urgent finding."""
        for flag in sorted(reading.measurement.flags & URGENT_FLAGS.keys()):
            kind, direction = URGENT_FLAGS[flag]
            log.warning("device %s: %s (reading %s): urgent event sent", reading.device.address, flag, reading.id)
            self.events.notify(kind, {"reading": str(reading.id), "range": direction})

    async def store_held(self) -> None:
        """Try to commit the readings held in memory, in order; stop at the first that still fails."""
        while self._held:
            try:
                put = await self._put(self._held[0])
            except OutboxUnavailable as exc:
                self.storage_fault = str(exc)
                return
            await self._taken(self._held.popleft(), put)
        if self.storage_fault:
            log.warning("outbox writable again; every held reading is stored")
        self.storage_fault = None

    async def keep_storing_held(self, interval_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self._held:
                await self.store_held()
