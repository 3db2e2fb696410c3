"""The pages' HTTP server: uvicorn in the gateway's own asyncio loop, one more supervised task.

The pages are never worth a lost reading: if the address cannot be bound or the server fails, that is
one log line and the gateway goes on without pages.

uvicorn's own `Server.serve` runs a loop that wakes every 0.1 s (to refresh the Date header and to look
for a stop request): on an idle box that was most of the process's wake-ups (issue 17.11). Here the
server is started and stopped by hand instead, and the task waits for its cancellation; the Date header
is added per response (`_DateHeader`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from email.utils import formatdate

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.app import create_app
from gateway.web.live import LiveState
from gateway.web.middleware import BodyLimit, SecurityHeaders
from gateway.web.ports import GatewayPort

log = logging.getLogger(__name__)


class _DateHeader:
    """The Date header uvicorn's tick loop used to keep current (RFC 9110 asks an origin server for it),
    formatted at most once a second, first among the headers as uvicorn put it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._second = -1
        self._value = b""

    def _now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second, self._value = second, formatdate(second, usegmt=True).encode()
        return self._value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(b"date", self._now()), *message.get("headers", [])]
            await send(message)

        await self.app(scope, receive, dated)


class PagesServer:
    """The pages served from the gateway's own event loop (uvicorn); `ready` is set and `address` known
    once it listens. A port it cannot take is one log line: the gateway runs on without its pages.
    """

    def __init__(self, gw: GatewayPort) -> None:
        self._gw = gw
        self.live = LiveState.following(gw.pipeline)
        self.app = create_app(gw, self.live)
        self.port: int | None = None
        self.ready = asyncio.Event()

    @property
    def address(self) -> str | None:
        host = self._gw.settings.web.host
        return None if self.port is None else f"http://{'127.0.0.1' if host == 'localhost' else host}:{self.port}/"

    def _bind(self) -> socket.socket:
        web = self._gw.settings.web
        family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections on Linux: a small response is not held back waiting for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((web.host, web.port))
        except OSError:
            sock.close()
            raise
        sock.listen(64)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        return sock

    async def run(self) -> None:
        web = self._gw.settings.web
        try:
            sock = self._bind()
        except OSError as exc:
            log.error("web: cannot listen on %s:%d (%s); the gateway runs on without its pages", web.host,
                      web.port, exc.strerror or exc)
            return
        config = uvicorn.Config(_DateHeader(SecurityHeaders(BodyLimit(self.app))), log_config=None,
                                access_log=False, lifespan="off", timeout_graceful_shutdown=1, server_header=False,
                                date_header=False, proxy_headers=False, ws="none", http="h11")
        server = uvicorn.Server(config)
        # No access log: a kiosk polls all day, and a log of paths is a log of what the patient did.
        access = logging.getLogger("uvicorn.access")
        access.handlers, access.propagate, access.disabled = [], False, True
        try:
            # What Server.serve does before and after its tick loop; signals stay the gateway's (SIGINT,
            # SIGTERM): a cancelled task stops this server.
            config.load()
            server.lifespan = config.lifespan_class(config)
            await server.startup(sockets=[sock])
            log.info("web: the pages are at %s%s", self.address, " (home network, login needed)" if web.lan else "")
            self.ready.set()
            await asyncio.Event().wait()  # until cancelled: nothing wakes this task meanwhile
        except asyncio.CancelledError:
            # The gateway stops: answer the pages' waiting requests and close the connections cleanly.
            self.live.close()
            server.should_exit = True
            if server.started:
                with contextlib.suppress(Exception):
                    await server.shutdown(sockets=[sock])
            raise
        except Exception:
            log.exception("web: the pages stopped; the gateway runs on without them")
        finally:
            sock.close()
