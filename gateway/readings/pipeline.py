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

from drivers import (
    DecodeError,
    Delivery,
    DeviceFlag,
    Measurement,
    NotFinal,
    date_time,
    decode,
    decode_current_time,
    uuids,
)
from gateway.readings.clock import correct_live_time, correct_with_device_clock
from gateway.readings.ids import uuid7
from gateway.readings.reading import DeviceRef, Reading, to_wire
from gateway.settings import DeviceSection
from gateway.storage import PutResult, SealedOutbox
from sync.outbox import OutboxUnavailable
from sync.wire import EventKind
from zoning.engine import assess_reading, remembered
from zoning.history import PastReading
from zoning.models import Assessment
from zoning.plan import Plan

log = logging.getLogger(__name__)

ReadingListener = Callable[[Reading, Assessment], None]
EventSink = Callable[[EventKind, dict[str, str | int | float]], None]

# Device findings the nurse must hear of at once, as an event, not only when the reading is looked at.
URGENT_FLAGS: dict[DeviceFlag, tuple[EventKind, str]] = {
    DeviceFlag.ABOVE_MEASURING_RANGE: ("glucose_out_of_range", "above"),  # the meter's HI
    DeviceFlag.BELOW_MEASURING_RANGE: ("glucose_out_of_range", "below"),  # the meter's LO
}


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
        self.post_event: EventSink | None = None  # the runtime connects the uplink's (durable) events
        self.counts: Counter[str] = Counter()
        self.unprovisioned: Counter[str] = Counter()
        self.unassigned: deque[Unassigned] = deque(maxlen=UNASSIGNED_KEPT)
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
        """A value from a device: the reading stored from it, if one was."""
        return (await self._take(address, characteristic, data))[0]

    async def deliver(self, address: str, characteristic: str, data: bytes) -> Delivery:
        """Entry point for device sources (`drivers.Deliver`): take the value and say whether the device
        may now forget it — only once it is committed to the outbox (docs/ble.md)."""
        return (await self._take(address, characteristic, data))[1]

    async def _take(self, address: str, characteristic: str, data: bytes) -> tuple[Reading | None, Delivery]:
        received = self._now()
        provisioned = self._devices.get(address.upper())
        if provisioned is None:
            # A neighbour's device must never write into this patient's record.
            self.unprovisioned[address.upper()] += 1
            self.counts["unprovisioned"] += 1
            return None, Delivery.NOT_STORED  # not ours to tell a device to forget anything
        if characteristic in (uuids.CURRENT_TIME, uuids.DATE_TIME):
            self._device_clock(provisioned.address, characteristic, data, received)
            return None, Delivery.NOT_A_READING
        try:
            measurement = decode(characteristic, data)
        except NotFinal:
            self.counts["not_final"] += 1
            return None, Delivery.NOT_A_READING
        except DecodeError as exc:
            self.counts["rejected"] += 1
            log.warning("rejected a value from device %s (%s): %s", address, characteristic[4:8], exc)
            return None, Delivery.NOT_A_READING
        if measurement.kind != provisioned.kind:
            self.counts["rejected"] += 1
            log.warning("device %s is provisioned as %s but sent %s", address, provisioned.kind, measurement.kind)
            return None, Delivery.NOT_STORED
        if provisioned.user is not None and measurement.user_id != provisioned.user:
            if measurement.user_id is None:
                # A shared device that cannot say whose weight this is: ask, never guess from the value.
                self.unassigned.append(Unassigned(address.upper(), measurement, received))
                self.counts["unassigned"] += 1
            else:
                self.counts["other_user"] += 1  # another member of the household: not this patient's
            return None, Delivery.NOT_STORED
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
            dedup_key(device, characteristic, data, measurement),
            remembered(str(reading.id), measurement, reading.effective, assessment),
        )
        if self._held:  # nothing may overtake readings already waiting for the disk
            self._hold(item)
            return None, Delivery.NOT_STORED
        try:
            put = await self._put(item)
        except OutboxUnavailable as exc:
            self.storage_fault = str(exc)
            log.error("%s; holding readings in memory until it can", exc)
            self._hold(item)
            return None, Delivery.NOT_STORED
        return self._taken(item, put), Delivery.STORED

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
        self._urgent(item.reading)
        for listener in self.listeners:
            listener(item.reading, item.assessment)
        return item.reading

    def _urgent(self, reading: Reading) -> None:
        """Once the reading is stored (so the event can point at it), an event for each urgent finding."""
        for flag in sorted(reading.measurement.flags & URGENT_FLAGS.keys()):
            kind, direction = URGENT_FLAGS[flag]
            log.warning("device %s: %s (reading %s): urgent event sent", reading.device.address, flag, reading.id)
            if self.post_event is not None:
                self.post_event(kind, {"reading": str(reading.id), "range": direction})

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
