"""GATT value -> Measurement -> Reading -> Assessment -> sealed in the outbox -> listeners.

A reading is "taken" when the outbox commit returns; listeners (the local page, the sync loop) hear
of it only after that.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from drivers.decoders import decode
from drivers.measurement import DecodeError, Measurement
from gateway.clock import correct_live_time
from gateway.ids import uuid7
from gateway.reading import DeviceRef, Reading, to_wire
from gateway.settings import DeviceSection
from gateway.store import SealedOutbox
from zoning.models import Assessment, Profile
from zoning.thresholds import assess

log = logging.getLogger(__name__)

ReadingListener = Callable[[Reading, Assessment], None]


def dedup_key(device: DeviceRef, characteristic: str, data: bytes, measurement: Measurement) -> str | None:
    """The same physical measurement fetched again must keep its id. Without a device time stamp two
    identical values may be two measurements, so only time-stamped ones are deduplicated."""
    if measurement.device_time is None:
        return None
    return hashlib.sha256(f"{device.id}|{characteristic}|".encode() + data).hexdigest()


class Pipeline:
    def __init__(
        self,
        *,
        patient: str,
        devices: Mapping[str, DeviceSection],
        profile: Profile,
        outbox: SealedOutbox,
        zone: ZoneInfo,
        clock_tolerance: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._patient = patient
        self._devices = {address.upper(): device for address, device in devices.items()}
        self._profile = profile
        self._outbox = outbox
        self._zone = zone
        self._tolerance = clock_tolerance
        self._now = now
        self.listeners: list[ReadingListener] = []
        self.counts: Counter[str] = Counter()
        self.unprovisioned: Counter[str] = Counter()

    async def on_gatt_value(self, address: str, characteristic: str, data: bytes) -> Reading | None:
        """Entry point for every value a device source delivers."""
        received = self._now()
        provisioned = self._devices.get(address.upper())
        if provisioned is None:
            # A neighbour's device must never write into this patient's record.
            self.unprovisioned[address.upper()] += 1
            self.counts["unprovisioned"] += 1
            return None
        try:
            measurement = decode(characteristic, data)
        except DecodeError as exc:
            self.counts["rejected"] += 1
            log.warning("rejected a value from device %s (%s): %s", address, characteristic[4:8], exc)
            return None
        if measurement.kind != provisioned.kind:
            self.counts["rejected"] += 1
            log.warning("device %s is provisioned as %s but sent %s", address, provisioned.kind, measurement.kind)
            return None
        device = DeviceRef(address=provisioned.address, model=provisioned.model, serial=provisioned.serial)
        when = correct_live_time(measurement.device_time, received, self._zone, self._tolerance)
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
        assessment = assess(measurement, self._profile)
        payload = to_wire(reading, assessment).model_dump_json().encode()
        put = await asyncio.to_thread(
            self._outbox.put, str(reading.id), payload, dedup_key(device, characteristic, data, measurement)
        )
        if not put.new:
            self.counts["duplicate"] += 1
            return None
        self.counts["stored"] += 1
        log.info("stored reading %s (%s, %s)", reading.id, measurement.kind, assessment.zone)
        for listener in self.listeners:
            listener(reading, assessment)
        return reading
