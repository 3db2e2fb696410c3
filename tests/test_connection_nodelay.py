"""The MQTT client sockets (gateway uplink and central receiver) send at once: Nagle's algorithm off.

With Nagle on, a small PUBLISH waits for the previous segment's ACK (delayed by up to 40 ms on Linux):
the 45 ms floor under every reading -> ack round trip (issue 10, item 7; bench/latency.py measures it).
"""

from __future__ import annotations

import socket

from protocol import BrokerSettings, make_client
from tests.conftest import Mosquitto


async def test_client_sockets_have_tcp_nodelay(mosquitto: Mosquitto) -> None:
    async with make_client(BrokerSettings(port=mosquitto.port, insecure_dev=True), "nodelay-check") as client:
        sock = client._client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
