"""How to reach the broker.

One settings model, one client factory and bounded publish/subscribe, shared by the gateway's uplink and the
central side (the transport half of the wire contract: MQTT 5 over mutual TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho_mqtt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

log = logging.getLogger(__name__)


class BrokerSettings(BaseModel):
    """Where the broker is and how to reach it: MQTT 5 (or 3.1.1) over mutual TLS by default.

    Without `insecure_dev`, `ca_file`, `cert_file` and `key_file` are all required (a pydantic
    ValidationError otherwise). `keepalive_s` is in seconds.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="MQTT version; 3.1.1 only for brokers without 5"
    )
    insecure_dev: bool = Field(default=False, description="plain TCP without TLS: development only")
    ca_file: Path | None = None
    cert_file: Path | None = Field(default=None, description="this gateway's client certificate (CN = id)")
    key_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = Field(default=60, ge=5)

    @model_validator(mode="after")
    def _tls_complete(self) -> BrokerSettings:
        if not self.insecure_dev and not (self.ca_file and self.cert_file and self.key_file):
            raise ValueError(
                "TLS needs ca_file, cert_file and key_file (or insecure_dev = true for development)"
            )
        return self

    def tls_context(self) -> ssl.SSLContext | None:
        """The client's TLS context.

        A file that is missing or does not load raises OSError naming the key and the file (`mqtt.cert_file
        /etc/…/gateway.pem: no such file`).
        """
        if self.insecure_dev:
            return None
        assert self.ca_file and self.cert_file and self.key_file  # checked by the validator
        for key, path in (("ca_file", self.ca_file), ("cert_file", self.cert_file), ("key_file", self.key_file)):
            if not path.is_file():
                raise OSError(f"mqtt.{key} {path}: {'not a file' if path.exists() else 'no such file'}")
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"mqtt.ca_file {self.ca_file}: {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"mqtt.cert_file {self.cert_file} with mqtt.key_file {self.key_file}: {exc}") from None
        return context


# How often paho's keep-alive housekeeping runs (send PINGREQ when due, notice a missing PINGRESP). aiomqtt
# runs it every second, which on an idle gateway was one of its few wake-ups a second (issue 17.11); a
# quarter of the keep-alive, at most 5 s, sends the ping at most that late: well inside the broker's
# 1.5 x keep-alive.
MISC_INTERVAL_MAX_S = 5.0


class PublishRefused(Exception):
    """The broker answered a QoS 1 publish with a failure reason (an MQTT 5 PUBACK of 0x80 or more).

    E.g. "Not authorized": the ACL does not let this client write that topic. Not an `MqttError`: the
    connection is fine, and reconnecting would change nothing.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Client(aiomqtt.Client):
    """aiomqtt's client with two changes.

    Its keep-alive housekeeping runs every `misc_interval_s` seconds instead of every second, and the
    reason of a publish the broker refused is kept (aiomqtt drops PUBACK reason codes).
    """

    misc_interval_s = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A refusal belongs to the topic it was published on: the uplink's heartbeat and its batches, or a
        # worker's acks to many gateways, are in flight at once on one client.
        self._topic_of: dict[int, str] = {}  # message id -> topic, until its PUBACK
        self._refused: dict[str | None, str] = {}  # topic (None: not known) -> the broker's reason
        paho_publish = self._client.publish

        def publish(topic: str, *args: Any, **kwargs: Any) -> Any:
            info = paho_publish(topic, *args, **kwargs)
            self._topic_of[info.mid] = topic
            return info

        self._client.publish = publish  # type: ignore[method-assign]

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        topic = self._topic_of.pop(mid, None)
        if getattr(reason_code, "is_failure", False):
            self._refused[topic] = str(reason_code)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def take_refusal(self, topic: str) -> str | None:
        """The broker's reason for refusing the last publish on `topic`, once; None when it took it."""
        return self._refused.pop(topic, None) or self._refused.pop(None, None)

    async def _misc_loop(self) -> None:  # aiomqtt's own, with the interval above instead of 1 s
        while self._client.loop_misc() == paho_mqtt.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 (a timer, not a wait)
            await asyncio.sleep(self.misc_interval_s)


def make_client(
    settings: BrokerSettings,
    identifier: str,
    *,
    will: aiomqtt.Will | None = None,
    max_inflight: int | None = None,
) -> aiomqtt.Client:
    """An unconnected aiomqtt client for `settings`, with `identifier` as its MQTT client id.

    TCP_NODELAY is set on its socket as soon as it opens, and it has no operation timeout of its
    own: bound each operation with `bounded` (or use `publish`, `subscribe`). Its keep-alive
    housekeeping runs every quarter keep-alive, at most every `MISC_INTERVAL_MAX_S`. Raises OSError when a
    TLS file is missing or does not load (`BrokerSettings.tls_context`).
    """
    client = _Client(
        settings.host,
        settings.port,
        identifier=identifier,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        protocol=aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311,
        clean_session=None if settings.protocol == "5" else True,
        will=will,
        keepalive=settings.keepalive_s,
        tls_context=settings.tls_context(),
        max_inflight_messages=max_inflight,
        timeout=math.inf,  # see OPERATION_TIMEOUT_S
    )
    client.misc_interval_s = min(MISC_INTERVAL_MAX_S, settings.keepalive_s / 4)
    _send_without_delay(client)
    return client


def _send_without_delay(client: aiomqtt.Client) -> None:
    """Turn Nagle's algorithm off on the client's socket as soon as it opens.

    MQTT packets are small and each waits for an answer (PUBACK, the central service's ack): with Nagle
    on, a PUBLISH right after another waits for the peer's delayed ACK, up to 40 ms on Linux, and that
    was the floor under every reading -> ack round trip. aiomqtt offers no option for it, so the hook is
    paho's socket-open callback, which aiomqtt itself uses and which we keep calling.
    """
    paho = client._client
    opened = paho.on_socket_open

    def on_socket_open(paho_client: Any, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not a TCP socket (e.g. a Unix one): nothing to do
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if opened is not None:
            opened(paho_client, userdata, sock)

    paho.on_socket_open = on_socket_open




# aiomqtt bounds each operation with asyncio.wait_for, which on Python 3.11 can swallow a cancellation
# that arrives just as the operation completes: a stopping gateway would then run on for ever. The
# client is therefore built with no timeout of its own, and every operation is bounded here with
# asyncio.timeout, which does not lose cancellations.
OPERATION_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def bounded(what: str) -> AsyncIterator[None]:
    """Bound one MQTT operation by `OPERATION_TIMEOUT_S` seconds; past it, `aiomqtt.MqttError` naming `what`."""
    try:
        async with asyncio.timeout(OPERATION_TIMEOUT_S):
            yield
    except TimeoutError:
        raise aiomqtt.MqttError(f"{what} timed out after {OPERATION_TIMEOUT_S:.0f} s") from None


async def publish(client: aiomqtt.Client, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
    """Publish at QoS 1 (every v1 topic is QoS 1) and wait for the broker's PUBACK.

    Raises `PublishRefused` when the broker answered with a failure reason (MQTT 5), so a message the
    broker dropped is never taken for sent.
    """
    async with bounded("publish"):
        await client.publish(topic, payload, qos=1, retain=retain)
    refused = client.take_refusal(topic) if isinstance(client, _Client) else None
    if refused is not None:
        raise PublishRefused(refused)


async def subscribe(client: aiomqtt.Client, topic: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK, bounded by `OPERATION_TIMEOUT_S` (`aiomqtt.MqttError`)."""
    async with bounded("subscribe"):
        await client.subscribe(topic, qos=1)
