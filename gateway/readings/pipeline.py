"""GATT value -> Measurement -> Reading -> Assessment -> sealed in the outbox -> listeners.

A reading is "taken" when the outbox commit returns; listeners (the local page, the sync loop) hear
of it only after that.
"""

from __future__ import annotations

import asyncio
import hashlib
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
from gateway.readings.clock import correct_live_time, correct_with_device_clock
from gateway.readings.ids import uuid7
from gateway.readings.reading import DeviceRef, Reading, to_wire
from gateway.settings import DeviceSection
from gateway.storage import PutResult, SealedOutbox
from sync.outbox import OutboxUnavailable
from zoning.engine import assess_reading, remembered
from zoning.history import PastReading
from zoning.models import Assessment
from zoning.plan import Plan

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
    """A reading from a shared device whose user it could not tell: waits for the patient to confirm."""

    address: str
    measurement: Measurement
    received: datetime


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
        self.unassigned: deque[Unassigned] = deque(maxlen=UNASSIGNED_KEPT)
        # Devices that report user ids but were provisioned without the patient's slot -> the user id seen.
        self.shared_without_slot: dict[str, int] = {}
        # Gateway time minus device time, read from the device's clock at the start of its session.
        self.clock_offsets: dict[str, timedelta] = {}
        # Readings waiting in memory while the outbox cannot be written (disk full, I/O error).
        self._held: deque[_Pending] = deque()
        self._held_limit = held_limit
        self.storage_fault: str | None = None
        since = (now() - timedelta(days=HISTORY_DAYS)).timestamp()
        self.history: list[PastReading] = [PastReading.model_validate_json(b) for b in outbox.recall(since)]

    @property
    def held(self) -> int:
        return len(self._held)

    async def on_gatt_value(self, address: str, characteristic: str, data: bytes) -> Reading | None:
        """Entry point for every value a device source delivers. Each step may end the value's way with
        a count (and a log line where a technician can act); the returned reading was durably stored."""
        received = self._now()
        provisioned = self._provisioned(address)
        if provisioned is None:
            return None
        if characteristic in (uuids.CURRENT_TIME, uuids.DATE_TIME):
            self._device_clock(provisioned.address, characteristic, data, received)
            return None
        measurement = self._decode(address, characteristic, data)
        if measurement is None or not self._is_the_patients(provisioned, measurement, received):
            return None
        reading = self._identify(provisioned, measurement, received)
        return await self._store(self._judge(reading, characteristic, data))

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

    def _is_the_patients(self, provisioned: DeviceSection, measurement: Measurement, received: datetime) -> bool:
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
            self._unassigned(address, measurement, received)
            return False
        if provisioned.user is not None and measurement.user_id != provisioned.user:
            if measurement.user_id is None:
                self._unassigned(address, measurement, received)  # a shared device that cannot say whose
            else:
                self.counts["other_user"] += 1  # another member of the household: not this patient's
            return False
        return True

    def _unassigned(self, address: str, measurement: Measurement, received: datetime) -> None:
        self.unassigned.append(Unassigned(address, measurement, received))
        self.counts["unassigned"] += 1

    def _identify(self, provisioned: DeviceSection, measurement: Measurement, received: datetime) -> Reading:
        """An id, the patient, the device, and a time that is never later than the receive time."""
        offset = self.clock_offsets.get(provisioned.address)
        if offset is None:
            when = correct_live_time(measurement.device_time, received, self._zone, self._tolerance)
        else:
            when = correct_with_device_clock(measurement.device_time, offset, received, self._zone, self._tolerance)
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

    def _judge(self, reading: Reading, characteristic: str, data: bytes) -> _Pending:
        """The assessment against the history, and everything the outbox commit needs."""
        m = reading.measurement
        # Readings held for the disk are history too: the patient took them, in this order.
        history = [*self.history, *(held.past for held in self._held)]
        assessment = assess_reading(m, reading_id=str(reading.id), effective=reading.effective,
                                    history=history, plan=self.plan, tz=self._zone)
        return _Pending(
            reading, assessment, to_wire(reading, assessment).model_dump_json().encode(),
            dedup_key(reading.device, characteristic, data, m),
            remembered(str(reading.id), m, reading.effective, assessment),
        )

    async def _store(self, item: _Pending) -> Reading | None:
        """Taken when the outbox commit returns; while the disk cannot take it, held in order in memory."""
        if self._held:  # nothing may overtake readings already waiting for the disk
            self._hold(item)
            return None
        try:
            put = await self._put(item)
        except OutboxUnavailable as exc:
            self.storage_fault = str(exc)
            log.error("%s; holding readings in memory until it can", exc)
            self._hold(item)
            return None
        return self._taken(item, put)

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
