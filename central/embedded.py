"""The central service in one process: one ingest worker and a SQLite (or any) database, and, once
`open_worklist` is called, the nurses' worklist beside it. What `dho-gateway demo` runs as "the central
service" (found through the `dho_gateway.central` entry point: the gateway never imports central) and
what the end-to-end tests check against."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from pathlib import Path
from typing import Any

from central.ingest import IngestWorker
from central.store import Database
from central.worklist import Worklist, WorklistServer, hash_password
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
        self.worklist: WorklistServer | None = None
        self._worklist_socket: socket.socket | None = None

    @property
    def ready(self) -> asyncio.Event:
        return self.worker.ready

    @property
    def rejected(self) -> int:
        return self.worker.rejected

    def provision(self, gateway: str, *, tenant: str, patient: str) -> None:
        """Register a gateway: only provisioned gateways are heard, each only under its own tenant."""
        self.database.provision(gateway, tenant=tenant, patient=patient)

    def open_worklist(self, *, port: int = 8470, users: tuple[tuple[str, str, str, str], ...] = ()) -> str:
        """Serve the nurses' worklist on 127.0.0.1 while `run()` runs: on `port` if it is free, else on any
        free port. `users` are (name, tenant, role, password). Returns the worklist's address."""
        worklist = Worklist(self.database)
        for name, tenant, role, password in users:
            worklist.add_user(name, tenant=tenant, role=role, password_hash=hash_password(password))
        self.worklist = WorklistServer(worklist, host="127.0.0.1", port=port)
        try:
            self._worklist_socket = self.worklist.bind()
        except OSError:
            self.worklist.port = 0
            self._worklist_socket = self.worklist.bind()
        return self.worklist.address

    @property
    def worklist_address(self) -> str | None:
        """Where the worklist is served (None until `open_worklist`)."""
        return None if self.worklist is None else self.worklist.address

    async def run(self) -> None:
        if self.worklist is None or self._worklist_socket is None:
            await self.worker.run()
            return
        pages = asyncio.create_task(self.worklist.run(self._worklist_socket))
        try:
            await self.worker.run()
        finally:
            pages.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pages

    def count(self) -> int:
        return self.database.count()

    def events(self, gateway: str | None = None) -> list[dict[str, Any]]:
        """The events stored, oldest first: id, tenant, gateway, kind, at, detail."""
        return self.database.events(gateway)

    def readings(self, gateway: str | None = None) -> list[WireReading]:
        return [WireReading.model_validate_json(body) for body in self.database.reading_bodies(gateway)]

    def close(self) -> None:
        if self._worklist_socket is not None:
            self._worklist_socket.close()
        self.database.close()
