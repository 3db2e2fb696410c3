"""Wiring of one gateway process: key, outbox, profile, pipeline, uplink, device source."""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import timedelta
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.device_sources import DeviceSource
from gateway.keys import key_source_for
from gateway.pipeline import Pipeline
from gateway.profiles import load_profile
from gateway.settings import ConfigError, Settings
from gateway.store import SealedOutbox
from sync.outbox import Outbox
from sync.topics import Topics
from sync.uplink import AckListener, Uplink

log = logging.getLogger(__name__)

_SOURCE_RESTART_S = 5.0


class Gateway:
    def __init__(self, settings: Settings, source: DeviceSource, *, on_ack: AckListener | None = None) -> None:
        g = settings.gateway
        self.settings = settings
        self.source = source
        profile = load_profile(settings.zoning.profile)
        try:
            settings.mqtt.tls_context()  # fail at start-up, not on the first reconnect
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt: cannot load the TLS files: {exc}") from None
        # Only a first run may make a key: beside an existing outbox a new key could not read anything.
        kek = key_source_for(g).load(create=not g.outbox_path.exists())
        self.outbox = SealedOutbox(g.outbox_path, kek)
        self.pipeline = Pipeline(
            patient=g.patient,
            devices={d.address: d for d in settings.devices},
            profile=profile,
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
            faults=lambda: [self.pipeline.storage_fault] if self.pipeline.storage_fault else [],
        )
        self.pipeline.listeners.append(lambda _reading, _assessment: self.uplink.notify())

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
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.uplink.run())
                tasks.create_task(self._supervise_source())
                tasks.create_task(self.pipeline.keep_storing_held())
        finally:
            self.outbox.close()
