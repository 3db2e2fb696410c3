"""Wiring of one gateway process: key, outbox, profile, pipeline, uplink, device source."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from drivers.measurement import MeasurementKind
from gateway import __version__
from gateway.errors import GatewayError
from gateway.listeners import Unsubscribe
from gateway.plans import Binding, PlanKeeper, ProposalWatch, load_advice, load_profile, unmeasured_faults
from gateway.readings import UNCERTAIN, Pipeline, Reading
from gateway.service.device_sources import DeviceSource
from gateway.service.health import EventDetail, StorageFacts, StorageWatch, device_faults
from gateway.service.notify import Health, Notifier, keep_watchdog, watchdog_interval
from gateway.service.patient_binding import check_patient_binding
from gateway.settings import ConfigError, Settings
from gateway.storage import Outbox, OutboxUnavailable, SealedOutbox, key_source_for
from gateway.uplink import CENTRAL_REFUSAL_FILE, StatusFacts, Uplink
from protocol import Backoff, DeviceStatus, Topics
from zoning import Assessment, PastReading, Plan, overdue, standard_plan

if TYPE_CHECKING:
    from gateway.web import PagesServer, ServiceFacts

log = logging.getLogger(__name__)

_SOURCE_RESTART_S = 5.0
_SOURCE_RESTART_MAX_S = 300.0
_HEALTH_INTERVAL_S = 5.0


class Gateway:
    """One gateway process wired together: key, sealed outbox, plan keeper, pipeline, uplink, pages and
    device source (`run()` supervises them until cancelled).

    Construction opens the outbox and reads the kept plan and history (it may raise `GatewayError`, one
    line for the technician); `run()` restarts a failed device source with the one backoff and reports
    READY / WATCHDOG / STATUS to systemd.
    """

    def __init__(self, settings: Settings, source: DeviceSource, *, notifier: Notifier | None = None) -> None:
        g = settings.gateway
        self.settings = settings
        self.source = source
        self.notifier = notifier or Notifier.from_environment()  # systemd Type=notify; inert elsewhere
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
        self.source_restart_s = (_SOURCE_RESTART_S, _SOURCE_RESTART_MAX_S)  # first and longest pause
        self._overdue_reported: dict[MeasurementKind, date] = {}
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
        # The gateway is built before its loop runs (it opens the outbox above): the pipeline's latest day
        # and waiting weighings are read here too, so the pages start from them.
        self.pipeline.load()
        outbox: Outbox = self.outbox
        self.last_ack_at: datetime | None = None
        self.uplink = Uplink(
            outbox,
            settings.mqtt,
            Topics(g.tenant, g.id),
            version=__version__,
            batch_size=settings.sync.batch_size,
            window=settings.sync.window,
            ack_timeout_s=settings.sync.ack_timeout_s,
            status_interval_s=settings.sync.status_interval_s,
            facts=self._status_facts,
            on_config=self.plans.receive,
            refusal_file=g.data_dir / CENTRAL_REFUSAL_FILE,
            refusal_pause_s=(settings.sync.refusal_pause_s, max(settings.sync.refusal_pause_s,
                                                                settings.sync.refusal_pause_max_s)),
        )
        self.proposals = ProposalWatch(self.uplink.publish_proposal, gateway=g.id, patient=g.patient,
                                       tz=ZoneInfo(g.timezone))
        self._proposing: asyncio.Task[None] | None = None
        self._time_reported: set[tuple[str, date]] = set()
        # For sources that cannot report their devices (the simulated home): when each last gave a reading.
        self._last_reading: dict[str, datetime] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the running loop, once `run` has it
        self._unsubscribe = self._wire()
        self.web: PagesServer | None = None
        if settings.web.enabled:  # imported only then: a gateway without pages does not carry FastAPI
            from gateway.web import PagesServer

            self.web = PagesServer(self)  # the pages follow the pipeline themselves (LiveState.following)

    def _wire(self) -> list[Unsubscribe]:
        """Who hears of what inside the process: every subscription of the gateway's rooms to each other,
        here and nowhere else. Each listener is guarded by the room that calls it (`Listeners.notify`)."""
        pipeline, plans, uplink = self.pipeline, self.plans, self.uplink
        return [
            # A stored reading or questionnaire: the uplink drains it now, not at its next poll.
            pipeline.readings.subscribe(lambda _reading, _assessment: uplink.notify()),
            pipeline.questionnaires.subscribe(lambda _id, _answers, _assessment: uplink.notify()),
            pipeline.readings.subscribe(self._propose),
            pipeline.readings.subscribe(lambda reading, _assessment: self._report_uncertain_time(reading)),
            pipeline.readings.subscribe(lambda r, _a: self._last_reading.__setitem__(r.device.address, r.received)),
            # Urgent device findings (glucose HI/LO) and the plan keeper's news go up as (durable) events.
            pipeline.events.subscribe(uplink.post_event),
            plans.events.subscribe(uplink.post_event),
            plans.applied.subscribe(self._plan_changed),
            uplink.acks.subscribe(self._acked),
            self.outbox.quarantines.subscribe(self._quarantined),
        ]

    def _acked(self, _ids: list[str]) -> None:
        self.last_ack_at = datetime.now(UTC)

    def _propose(self, _reading: Reading, _assessment: Assessment) -> None:
        # The pipeline keeps only the latest day in memory; the 14 days come from the sealed history, off
        # the loop. One computation at a time: a burst of readings gives one proposal, from the last one.
        if self._proposing is None or self._proposing.done():
            self._proposing = asyncio.get_running_loop().create_task(self._send_proposal())

    async def _send_proposal(self) -> None:
        try:
            history = await asyncio.to_thread(self._baseline_history)
        except OutboxUnavailable as exc:
            log.warning("%s; the baseline proposal waits for the next reading", exc)
            return
        self.proposals.check(history, self.pipeline.plan)

    def _baseline_history(self) -> list[PastReading]:
        now = datetime.now(UTC)
        return [p for kind in self.pipeline.plan.rules.kinds for p in self.pipeline.past(kind, now)]

    def _plan_changed(self, plan: Plan) -> None:
        # The next assessment is judged by the new plan; readings already stored keep the plan they named.
        self.pipeline.use_plan(plan)
        self.uplink.refresh_status()

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
        first = self.outbox.first_history_time(kind.value for kind in MeasurementKind)
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
        try:
            facts = self._storage_facts()
        except OutboxUnavailable as exc:  # the status still goes out, saying what is wrong
            return StatusFacts([str(exc), *self.outbox.damage()])
        devices: list[DeviceStatus] = []
        status_of = self.source.device_status if self.source.reports_devices else None  # real devices do
        if callable(status_of):
            devices = status_of()
        else:  # the provisioned devices, as far as the readings tell
            devices = [DeviceStatus(id=d.serial or d.address, kind=d.kind.value,
                                    last_seen=self._last_reading.get(d.address)) for d in self.settings.devices]
        faults = (self.storage_watch.faults(facts) + self.outbox.damage() + device_faults(devices)
                  + self.plans.faults() + self._provisioning_faults()
                  # A plan judging kinds no paired device measures: nothing would ever be judged or overdue.
                  + unmeasured_faults(self.pipeline.plan, {d.kind for d in self.settings.devices})
                  + self.uplink.faults())
        plan = self.pipeline.plan
        counts = self.pipeline.counts
        return StatusFacts(faults, facts.used_percent, self.outbox.quarantined(), facts.oldest_waiting_s,
                           tuple(devices),
                           profile=plan.profile.id, rules_hash=plan.rules_hash, plan_version=plan.signed_version,
                           plan_hash=plan.plan_hash, rejected=counts["rejected"], unassigned=counts["unassigned"])

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
            try:
                facts = await asyncio.to_thread(self._storage_facts)
            except OutboxUnavailable as exc:
                log.error("storage check: %s", exc)
                await asyncio.sleep(self.health_interval_s)
                continue
            changes = self.storage_watch.changes(facts)
            for kind, detail in changes:
                log.warning("storage: %s %s", kind, detail)
                self.uplink.post_event(kind, detail)
            if changes:
                self.uplink.refresh_status()
            await asyncio.sleep(self.health_interval_s)

    async def _log_waiting(self) -> None:
        # Counted beside start-up (seconds with a million readings waiting): logged when known.
        log.info("%d reading(s) waiting in the outbox", await asyncio.to_thread(self.outbox.depth))

    def _quarantined(self, seq: int, reason: str) -> None:
        """Told on whichever thread read the record: the event is posted on the loop's."""
        loop = self._loop
        if loop is None:  # not running yet: the outbox logged it, the status counts it
            return
        detail: EventDetail = {"record": seq, "reason": reason}
        loop.call_soon_threadsafe(self.uplink.post_event, "outbox_record_quarantined", detail)
        loop.call_soon_threadsafe(self.uplink.refresh_status)

    async def _supervise_source(self) -> None:
        # A failing device source must not stop delivery of what is already stored. A cause that stays
        # (no BlueZ on this machine) is said once; the tries after it are quiet and further apart.
        backoff = Backoff(*self.source_restart_s)
        said: str | None = None
        while True:
            started = time.monotonic()
            try:
                await self.source.run(self.pipeline.deliver)
                return
            except Exception as exc:
                if time.monotonic() - started > backoff.max_s:  # it ran a good while: a new failure
                    backoff.reset()
                    said = None
                delay = backoff.next_delay()
                reason = f"{type(exc).__name__}: {exc}"
                if reason == said:
                    log.debug("device source still failing (%s); next try in %.1f s", reason, delay)
                elif isinstance(exc, GatewayError | OSError):  # a condition of the machine: its one line
                    log.error("device source: %s; trying again quietly, at most every %g s", exc, backoff.max_s)
                else:  # a bug: its traceback, once
                    log.exception("device source failed; trying again quietly, at most every %g s", backoff.max_s)
                said = reason
                await asyncio.sleep(delay)

    def _status_line(self) -> str:
        facts = self._storage_facts()
        line = (f"{facts.waiting} reading(s) waiting in the outbox; broker "
                f"{'connected' if self.uplink.connected.is_set() else 'not connected'}")
        return line + (f"; storage fault: {facts.storage_fault}" if facts.storage_fault else "")

    async def _health(self) -> Health:
        # The outbox answering (off the loop) is what "healthy" means: a full outbox is reported in the
        # status but is no reason for a restart (nothing is lost at the bound; README "Size bound").
        return Health(True, await asyncio.to_thread(self._status_line))

    async def _tell_systemd(self, uplink: asyncio.Task[None]) -> None:
        if not self.notifier.enabled:
            return
        await asyncio.sleep(0)  # let the uplink task take its first step before saying READY
        if uplink.done():
            return  # it failed at once: the TaskGroup ends the process; never say READY
        self.notifier.ready(await asyncio.to_thread(self._status_line))
        interval = watchdog_interval()
        if interval is not None:
            await keep_watchdog(self.notifier, interval, self._health)
            return
        while True:  # no watchdog configured: keep `systemctl status` current all the same
            await asyncio.sleep(self.health_interval_s)
            self.notifier.status(await asyncio.to_thread(self._status_line))

    async def run(self) -> None:
        log.info(
            "gateway %s started: %d device(s) provisioned",
            self.settings.gateway.id, len(self.settings.devices),
        )
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tasks:
                # The proposal from what is kept (the whole 14 days, read off the loop; not the latest day).
                self._proposing = tasks.create_task(self._send_proposal())
                tasks.create_task(self._log_waiting())
                tasks.create_task(self._watch())
                uplink = tasks.create_task(self.uplink.run())
                tasks.create_task(self._supervise_source())
                tasks.create_task(self.pipeline.keep_storing_held())
                if self.web is not None:
                    tasks.create_task(self.web.run())
                tasks.create_task(self._tell_systemd(uplink))
        finally:
            self.notifier.stopping()
            self.outbox.close()
