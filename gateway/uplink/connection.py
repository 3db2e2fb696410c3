"""Stay connected to the broker: the gateway's reconnect loop around one MQTT session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from protocol import Backoff, BrokerSettings, bounded, make_client

log = logging.getLogger(__name__)

# One MQTT session on a connected client; it returns or raises when the connection ends.
Session = Callable[[aiomqtt.Client], Awaitable[None]]


async def stay_connected(
    settings: BrokerSettings,
    identifier: str,
    session: Session,
    *,
    will: aiomqtt.Will | Callable[[], aiomqtt.Will] | None = None,
    max_inflight: int | None = None,
    backoff_min_s: float = 0.5,
    backoff_max_s: float = 60.0,
) -> None:
    """Run `session` on a connected client for ever, reconnecting with jittered exponential backoff.

    A broker that stays away is said once per cause; the reconnects while it lasts are logged at debug.
    """
    if settings.insecure_dev:
        log.warning(
            "MQTT to %s:%d WITHOUT TLS (insecure_dev = true): readings travel in clear text; never in production",
            settings.host,
            settings.port,
        )
    backoff = Backoff(backoff_min_s, backoff_max_s)
    said: str | None = None
    while True:
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with bounded("connect"):
                    client = await stack.enter_async_context(
                        # A callable will is composed per connection (the status it carries is dated).
                        make_client(settings, identifier, will=will() if callable(will) else will,
                                    max_inflight=max_inflight)
                    )
                log.info("connected to broker %s:%d", settings.host, settings.port)
                backoff.reset()
                said = None
                await session(client)
        except* aiomqtt.MqttError as group:  # the session's task group wraps errors; a bare one is wrapped too
            reason = str(group.exceptions[0])
            if reason != said:
                log.warning("broker %s:%d: %s; reconnecting with backoff (up to %.0f s apart)",
                            settings.host, settings.port, reason, backoff.max_s)
            said = reason
        delay = backoff.next_delay()
        log.debug("reconnecting in %.1f s", delay)
        await asyncio.sleep(delay)
