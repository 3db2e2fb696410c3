"""Wiring of one gateway process: key, outbox, profile, pipeline, uplink, device source."""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.plans import Binding, PlanKeeper, ProposalWatch, load_advice, load_profile
from gateway.readings import Pipeline, Reading
from gateway.service.device_sources import DeviceSource
from gateway.service.health import EventDetail, StorageFacts, StorageWatch, device_faults
from gateway.settings import ConfigError, Settings
from gateway.storage import SealedOutbox, key_source_for
from sync.outbox import Outbox
from sync.topics import Topics
from sync.uplink import AckListener, StatusFacts, Uplink
from sync.wire import DeviceStatus
from zoning.models import Assessment
from zoning.plan import Plan, standard_plan
from zoning.schedule import days_overdue, next_due

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
        # The signed plan kept sealed, if one was ever applied; the standard profile only before that.
        self.plans = PlanKeeper(
            binding=Binding(g.tenant, g.id, g.patient), plans=settings.plans, outbox=self.outbox, templates=advice,
            standard=standard_plan(profile, advice, settings.zoning.enrolled or self._first_day(ZoneInfo(g.timezone)),
                                   settings.zoning.language),
        )
        self.pipeline = Pipeline(
            patient=g.patient,
            devices={d.address: d for d in settings.devices},
            plan=self.plans.plan,
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
            on_config=self.plans.receive,
        )
        self.pipeline.listeners.append(lambda _reading, _assessment: self.uplink.notify())
        self.plans.events = self.uplink.post_event
        self.plans.listeners.append(self._plan_changed)
        self.proposals = ProposalWatch(self.uplink.publish_proposal, gateway=g.id, patient=g.patient,
                                       tz=ZoneInfo(g.timezone))
        self.pipeline.listeners.append(self._propose)

    def _propose(self, _reading: Reading, _assessment: Assessment) -> None:
        self.proposals.check(self.pipeline.history, self.pipeline.plan)

    def _plan_changed(self, plan: Plan) -> None:
        # The next assessment is judged by the new plan; readings already stored keep the plan they named.
        self.pipeline.plan = plan
        self.uplink.refresh_status()

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
        faults = self.storage_watch.faults(facts) + device_faults(devices) + self.plans.faults()
        plan = self.pipeline.plan
        return StatusFacts(faults, facts.used_percent, self.outbox.quarantined(), tuple(devices),
                           profile=plan.profile.id, rules_hash=plan.rules_hash, plan_version=plan.signed_version,
                           plan_hash=plan.plan_hash)

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
        self.proposals.check(self.pipeline.history, self.pipeline.plan)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._watch())
                tasks.create_task(self.uplink.run())
                tasks.create_task(self._supervise_source())
                tasks.create_task(self.pipeline.keep_storing_held())
        finally:
            self.outbox.close()
