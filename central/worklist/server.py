"""The worklist's HTTP server: uvicorn in the caller's asyncio loop (the `worklist serve` command, or the
embedded central of the demo), with the hardening every response gets, no access log (a log of paths
is a log of whom the nurses looked at), and the periodic kit check (silent kits) beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from central.worklist.app import create_app
from central.worklist.hours import TenantHours
from central.worklist.security import SECURITY_HEADERS, ProxySignOn
from central.worklist.store import SILENT_AFTER, Worklist

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
CHECK_EVERY_S = 300.0


class Hardened:
    """Adds the security headers to every response; refuses a request body over `MAX_BODY_BYTES` (or of
    unknown length) with 413 before the application reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        chunked = b"transfer-encoding" in headers
        if chunked or (length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES)):
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b"request body too large\n"})
            return

        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}  # type: ignore[attr-defined]
                message["headers"] = [*message.get("headers", []),  # type: ignore[misc]
                                      *(h for h in SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the process owns its signals; cancelling the task stops this server


class WorklistServer:
    """Serves the worklist on `host:port` (port 0: any free one) and runs the kit check every
    `check_every_s`."""

    def __init__(self, worklist: Worklist, *, host: str = "127.0.0.1", port: int = 8470,
                 hours: TenantHours | None = None, silent_after: timedelta = SILENT_AFTER,
                 check_every_s: float = CHECK_EVERY_S, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sign_on: ProxySignOn | None = None) -> None:
        self.worklist = worklist
        self.host, self.port = host, port
        self.app: FastAPI = create_app(worklist, hours=hours, now=now, sign_on=sign_on)
        self.silent_after = silent_after
        self.check_every_s = check_every_s
        self._now = now
        self.ready = asyncio.Event()

    @property
    def address(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('localhost', '0.0.0.0') else self.host}:{self.port}/"  # noqa: S104

    def bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        return sock

    async def _checks(self) -> None:
        while True:
            try:
                opened = await asyncio.to_thread(self.worklist.check_kits, self._now(), silent_after=self.silent_after)
                if opened:
                    log.info("worklist: %d silent kit(s) found", opened)
            except Exception as exc:  # the database away for a while: the next round tries again
                log.warning("worklist: the kit check failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
            await asyncio.sleep(self.check_every_s)

    async def run(self, sock: socket.socket | None = None) -> None:
        sock = sock or self.bind()
        config = uvicorn.Config(Hardened(self.app), log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, server_header=False, proxy_headers=False,
                                ws="none", http="h11")
        access = logging.getLogger("uvicorn.access")
        access.handlers, access.propagate, access.disabled = [], False, True
        server = _InLoopServer(config)
        checks = asyncio.create_task(self._checks())
        log.info("worklist: the nurses' worklist is at %s", self.address)
        self.ready.set()
        try:
            await server.serve(sockets=[sock])
        except asyncio.CancelledError:
            self.app.state.closing.set()
            server.should_exit = True
            with contextlib.suppress(Exception):
                await server.shutdown(sockets=[sock])
            raise
        finally:
            checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checks
            sock.close()
