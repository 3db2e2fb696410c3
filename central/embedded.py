"""The central service in one process: one ingest worker and a SQLite (or any) database. What
`dho-gateway demo` runs as "the central service" (found through the `dho_gateway.central` entry point:
the gateway never imports central) and what the end-to-end tests check against."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from central.ingest import IngestWorker
from central.store import Database
from protocol import BrokerSettings, WireReading


class EmbeddedCentral:
    def __init__(
        self,
        broker: BrokerSettings,
        database: Path | str,
        *,
        identifier: str | None = None,
        group: str | None = "dho-central",
        session_expiry_s: int = 300,
    ) -> None:
        self.database = Database(str(database))
        self.worker = IngestWorker(
            broker, self.database, identifier=identifier or f"dho-central-{uuid.uuid4().hex[:8]}", group=group,
            session_expiry_s=session_expiry_s,
        )

    @property
    def ready(self) -> asyncio.Event:
        return self.worker.ready

    @property
    def rejected(self) -> int:
        return self.worker.rejected

    def provision(self, gateway: str, *, tenant: str, patient: str) -> None:
        """Register a gateway: only provisioned gateways are heard, each only under its own tenant."""
        self.database.provision(gateway, tenant=tenant, patient=patient)

    async def run(self) -> None:
        await self.worker.run()

    def count(self) -> int:
        return self.database.count()

    def events(self, gateway: str | None = None) -> list[dict[str, Any]]:
        """The events stored, oldest first: id, tenant, gateway, kind, at, detail."""
        return self.database.events(gateway)

    def readings(self, gateway: str | None = None) -> list[WireReading]:
        return [WireReading.model_validate_json(body) for body in self.database.reading_bodies(gateway)]

    def close(self) -> None:
        self.database.close()
