"""Wiring of one gateway process: key, outbox, profile, pipeline, uplink, device source."""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from drivers.measurement import MeasurementKind
from gateway import __version__
from gateway.plans import load_advice, load_profile
from gateway.readings import UNCERTAIN, Pipeline, Reading
from gateway.service.device_sources import DeviceSource
from gateway.service.health import EventDetail, StorageFacts, StorageWatch, device_faults
from gateway.service.patient_binding import check_patient_binding
from gateway.settings import ConfigError, Settings
from gateway.storage import SealedOutbox, key_source_for
from sync.outbox import Outbox
from sync.topics import Topics
from sync.uplink import AckListener, StatusFacts, Uplink
from sync.wire import DeviceStatus
from zoning.plan import standard_plan
from zoning.schedule import overdue

log = logging.getLogger(__name__)

_SOURCE_RESTART_S = 5.0
_HEALTH_INTERVAL_S = 5.0


class Gateway:
    def __init__(self, settings: Settings, source: DeviceSource, *, on_ack: AckListener | None = None) -> None:
        g = settings.gateway
        self.settings = settings
        self.source = source
        profile = load_profile(settings.zoning.profile)
        advice = load_advice()
        try:
            settings.mqtt.tls_context()  # fail at start-up, not on the first reconnect
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt: cannot load the TLS files: {exc}") from None
        # Before anything reads the stored history: it must be this patient's (issue 9.7).
        check_patient_binding(g.data_dir, g.outbox_path, g.patient)
        # Only a first run may make a key: beside an existing outbox a new key could not read anything.
        kek = key_source_for(g).load(create=not g.outbox_path.exists())
        self.outbox = SealedOutbox(g.outbox_path, kek, max_bytes=settings.outbox.max_bytes)
        self.storage_watch = StorageWatch(settings.outbox.alert_percent)
        self.health_interval_s = _HEALTH_INTERVAL_S
        self._overdue_reported: dict[MeasurementKind, date] = {}
        self.pipeline = Pipeline(
            patient=g.patient,
            devices={d.address: d for d in settings.devices},
            plan=standard_plan(profile, advice, settings.zoning.enrolled or self._first_day(ZoneInfo(g.timezone))),
            outbox=self.outbox,
            zone=ZoneInfo(g.timezone),
            clock_tolerance=timedelta(seconds=g.clock_tolerance_s),
        )
        outbox: Outbox = self.outbox
        self.uplink = Uplink(
            outbox,
            settings.mqtt,
            Topics(g.tenant, g.id),
            version=__version__,
            batch_size=settings.sync.batch_size,
            window=settings.sync.window,
            ack_timeout_s=settings.sync.ack_timeout_s,
            status_interval_s=settings.sync.status_interval_s,
            on_ack=on_ack,
            facts=self._status_facts,
        )
        self.pipeline.listeners.append(lambda _reading, _assessment: self.uplink.notify())
        self._time_reported: set[tuple[str, date]] = set()
        self.pipeline.listeners.append(lambda reading, _assessment: self._report_uncertain_time(reading))

    def _report_uncertain_time(self, reading: Reading) -> None:
        """A reading the device's clock could not date: the nurse hears of it once per device and day
        (a reset clock dates every stored record alike), the reading itself says so on the wire."""
        if reading.time_source not in UNCERTAIN:
            return
        key = (reading.device.id, reading.received.date())
        if key in self._time_reported:
            return
        self._time_reported.add(key)
        log.warning("device %s: a reading could not be dated by its clock (%s)", reading.device.id,
                    reading.time_source)
        self.uplink.post_event("reading_time_uncertain", {
            "device": reading.device.id, "reading": str(reading.id), "time_source": reading.time_source})

    def _first_day(self, tz: ZoneInfo) -> date:
        """Without an enrolment date in the settings, the schedule counts from the first reading kept."""
        first = self.outbox.first_history_time()
        when = datetime.now(tz) if first is None else datetime.fromtimestamp(first, tz)
        return when.date()

    def _storage_facts(self) -> StorageFacts:
        return StorageFacts(
            used_percent=self.outbox.usage().percent,
            waiting=self.outbox.depth(),
            oldest_waiting_s=self.outbox.oldest_pending_age_s(),
            storage_fault=self.pipeline.storage_fault,
            held=self.pipeline.held,
            refused=self.pipeline.counts["refused_storage_full"],
        )

    def _status_facts(self) -> StatusFacts:
        facts = self._storage_facts()
        devices: list[DeviceStatus] = []
        status_of = getattr(self.source, "device_status", None)  # sources with real devices report them
        if callable(status_of):
            devices = status_of()
        faults = self.storage_watch.faults(facts) + device_faults(devices) + self._provisioning_faults()
        counts = self.pipeline.counts
        return StatusFacts(faults, facts.used_percent, self.outbox.quarantined(), tuple(devices),
                           rejected=counts["rejected"], unassigned=counts["unassigned"])

    def _provisioning_faults(self) -> list[str]:
        return [f"device {address} reports user {user} but has no user slot provisioned: its readings wait "
                "unassigned; set `user` in its [[devices]] entry" for address, user in
                sorted(self.pipeline.shared_without_slot.items())]

    def _scheduled_kinds(self) -> list[MeasurementKind]:
        """What the plan's schedule asks the patient to measure; by default every kind the plan judges
        that the patient has a device for."""
        plan = self.pipeline.plan
        if plan.measured:
            return list(plan.measured)
        provisioned = {d.kind for d in self.settings.devices}
        return sorted(k for k in plan.rules.kinds if k in provisioned)

    def _check_overdue(self, tz: ZoneInfo) -> None:
        """One event per kind and due date: each kind is due on its own (issue 9.6)."""
        plan = self.pipeline.plan
        for late in overdue(plan.enrolled, self.pipeline.history, self._scheduled_kinds(), datetime.now(tz).date(), tz):
            if self._overdue_reported.get(late.kind) == late.due.on:
                continue
            self._overdue_reported[late.kind] = late.due.on
            log.info("%s measurement overdue by %d day(s) (%s schedule)", late.kind, late.days, late.due.cadence)
            self.uplink.post_event("measurement_overdue", {
                "kind": str(late.kind), "due": late.due.on.isoformat(), "days_overdue": late.days,
                "cadence": late.due.cadence})

    async def _watch(self) -> None:
        tz = ZoneInfo(self.settings.gateway.timezone)
        while True:
            self._check_overdue(tz)
            changes = self.storage_watch.changes(await asyncio.to_thread(self._storage_facts))
            for kind, detail in changes:
                log.warning("storage: %s %s", kind, detail)
                self.uplink.post_event(kind, detail)
            if changes:
                self.uplink.refresh_status()
            await asyncio.sleep(self.health_interval_s)

    def _quarantined(self, loop: asyncio.AbstractEventLoop, seq: int, reason: str) -> None:
        detail: EventDetail = {"record": seq, "reason": reason}
        loop.call_soon_threadsafe(self.uplink.post_event, "outbox_record_quarantined", detail)
        loop.call_soon_threadsafe(self.uplink.refresh_status)

    async def _supervise_source(self) -> None:
        # A failing device source must not stop delivery of what is already stored.
        while True:
            try:
                await self.source.run(self.pipeline.on_gatt_value)
                return
            except Exception:
                log.exception("device source failed; restarting it in %.0f s", _SOURCE_RESTART_S)
                await asyncio.sleep(_SOURCE_RESTART_S)

    async def run(self) -> None:
        log.info(
            "gateway %s started: %d reading(s) waiting in the outbox, %d device(s) provisioned",
            self.settings.gateway.id, self.outbox.depth(), len(self.settings.devices),
        )
        loop = asyncio.get_running_loop()
        self.outbox.on_quarantine = lambda seq, reason: self._quarantined(loop, seq, reason)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._watch())
                tasks.create_task(self.uplink.run())
                tasks.create_task(self._supervise_source())
                tasks.create_task(self.pipeline.keep_storing_held())
        finally:
            self.outbox.close()
