"""Wiring of one gateway process: key, outbox, profile, pipeline, uplink, device source."""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline
from gateway.service.device_sources import DeviceSource
from gateway.service.health import EventDetail, StorageFacts, StorageWatch, device_faults
from gateway.settings import ConfigError, Settings
from gateway.storage import SealedOutbox, key_source_for
from sync.outbox import Outbox
from sync.topics import Topics
from sync.uplink import AckListener, StatusFacts, Uplink
from sync.wire import DeviceStatus
from zoning.plan import standard_plan
from zoning.schedule import days_overdue, next_due

if TYPE_CHECKING:
    from gateway.web import PagesServer, ServiceFacts

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
        # Only a first run may make a key: beside an existing outbox a new key could not read anything.
        kek = key_source_for(g).load(create=not g.outbox_path.exists())
        self.outbox = SealedOutbox(g.outbox_path, kek, max_bytes=settings.outbox.max_bytes)
        self.storage_watch = StorageWatch(settings.outbox.alert_percent)
        self.health_interval_s = _HEALTH_INTERVAL_S
        self._overdue_reported: date | None = None
        self.pipeline = Pipeline(
            patient=g.patient,
            devices={d.address: d for d in settings.devices},
            plan=standard_plan(profile, advice, settings.zoning.enrolled or self._first_day(ZoneInfo(g.timezone))),
            outbox=self.outbox,
            zone=ZoneInfo(g.timezone),
            clock_tolerance=timedelta(seconds=g.clock_tolerance_s),
        )
        outbox: Outbox = self.outbox
        self.last_ack_at: datetime | None = None

        def acked(ids: list[str]) -> None:
            self.last_ack_at = datetime.now(UTC)
            if on_ack is not None:
                on_ack(ids)

        self.uplink = Uplink(
            outbox,
            settings.mqtt,
            Topics(g.tenant, g.id),
            version=__version__,
            batch_size=settings.sync.batch_size,
            window=settings.sync.window,
            ack_timeout_s=settings.sync.ack_timeout_s,
            status_interval_s=settings.sync.status_interval_s,
            on_ack=acked,
            facts=self._status_facts,
        )
        self.pipeline.listeners.append(lambda _reading, _assessment: self.uplink.notify())
        self.pipeline.answers_listeners.append(lambda *_: self.uplink.notify())
        self.web: PagesServer | None = None
        if settings.web.enabled:  # imported only then: a gateway without pages does not carry FastAPI
            from gateway.web import PagesServer

            self.web = PagesServer(self)

    @property
    def broker_connected(self) -> bool:
        return self.uplink.connected.is_set()

    def service_facts(self) -> ServiceFacts:
        """For the technician's page; blocking (it asks the outbox), so call it in a thread."""
        from gateway.web import ServiceFacts

        facts = self._status_facts()
        storage = self._storage_facts()
        return ServiceFacts(storage.waiting, storage.oldest_waiting_s, storage.used_percent, facts.quarantined or 0,
                            storage.held, list(facts.faults), list(facts.devices))

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
        faults = self.storage_watch.faults(facts) + device_faults(devices)
        return StatusFacts(faults, facts.used_percent, self.outbox.quarantined(), tuple(devices))

    def _check_overdue(self, tz: ZoneInfo) -> None:
        due = next_due(self.pipeline.plan.enrolled, self.pipeline.history, tz)
        late = days_overdue(due, datetime.now(tz).date())
        if late and due.on != self._overdue_reported:
            self._overdue_reported = due.on
            log.info("measurement overdue by %d day(s) (%s schedule)", late, due.cadence)
            self.uplink.post_event("measurement_overdue", {
                "due": due.on.isoformat(), "days_overdue": late, "cadence": due.cadence})

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
                if self.web is not None:
                    tasks.create_task(self.web.run())
        finally:
            self.outbox.close()
