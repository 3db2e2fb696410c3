"""The pages' HTTP server: uvicorn in the gateway's own asyncio loop, one more supervised task.

The pages are never worth a lost reading: if the address cannot be bound or the server fails, that is
one log line and the gateway goes on without pages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn

from gateway.web.app import create_app
from gateway.web.live import LiveState
from gateway.web.middleware import BodyLimit, SecurityHeaders
from gateway.web.ports import GatewayPort

log = logging.getLogger(__name__)


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The gateway process owns SIGINT/SIGTERM; a cancelled task stops this server.
        yield


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
        config = uvicorn.Config(SecurityHeaders(BodyLimit(self.app)), log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1, server_header=False,
                                proxy_headers=False, ws="none", http="h11")
        server = _InLoopServer(config)
        # No access log: a kiosk polls all day, and a log of paths is a log of what the patient did.
        access = logging.getLogger("uvicorn.access")
        access.handlers, access.propagate, access.disabled = [], False, True
        log.info("web: the pages are at %s%s", self.address, " (home network, login needed)" if web.lan else "")
        self.ready.set()
        try:
            await server.serve(sockets=[sock])
        except asyncio.CancelledError:
            # The gateway stops: answer the pages' waiting requests and close the connections cleanly.
            self.live.close()
            server.should_exit = True
            with contextlib.suppress(Exception):
                await server.shutdown(sockets=[sock])
            raise
        except Exception:
            log.exception("web: the pages stopped; the gateway runs on without them")
        finally:
            sock.close()
