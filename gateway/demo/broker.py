"""An in-process MQTT broker (amqtt) for `dho-gateway demo` only: pure Python, nothing to install.

amqtt speaks MQTT 3.1.1, so the demo's clients use 3.1.1; production brokers speak 5.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.errors import GatewayError


class DemoError(GatewayError):
    """The demo cannot run here (no broker reachable, the embedded one not installed): one line says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (the OS's choice); another process may take it."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[int]:
    """Run a broker on host:port (a free loopback port by default) and yield the port."""
    try:
        from amqtt.broker import Broker  # only the demo needs it; production installs may lack it
    except ImportError:
        raise DemoError(
            "demo: the embedded MQTT broker needs amqtt: pip install 'dho-gateway[demo]', "
            "or give --broker HOST:PORT"
        ) from None
    port = port or free_port(host)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            # Just anonymous auth: amqtt's default packet/event loggers and $SYS topics are noise here.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield port
    finally:
        await broker.shutdown()
