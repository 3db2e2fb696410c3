"""A publish the broker refuses (MQTT 5: its ACL has no entry for this gateway, so the PUBACK says "Not
authorized") is never taken for sent: the readings stay, are held back, and the status says why and
what to do. Before, the gateway heard the refusal as a plain PUBACK and said nothing (issue 19.2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from gateway.storage import MemoryOutbox
from gateway.uplink import Uplink
from protocol import BrokerSettings, Topics
from tests.conftest import Mosquitto


def reading_payload(reading_id: str) -> bytes:
    return json.dumps({"id": reading_id}).encode()


async def test_a_broker_that_refuses_the_kits_messages_is_said_and_loses_nothing(tmp_path: Path) -> None:
    (tmp_path / "acl").write_text("# no entry for this gateway: everything it publishes is refused\n")
    broker = Mosquitto(tmp_path, f"acl_file {tmp_path / 'acl'}\n")
    broker.start()
    outbox = MemoryOutbox()
    outbox.put("01939a2c-0000-7000-8000-000000000001", reading_payload("r-1"))
    uplink = Uplink(outbox, BrokerSettings(port=broker.port, insecure_dev=True), Topics("t-1", "gw-unlisted"),
                    version="test", ack_timeout_s=1, refusal_file=tmp_path / "refusal.json")
    task = asyncio.create_task(uplink.run())
    try:
        async with asyncio.timeout(15):
            while not uplink.faults():
                await asyncio.sleep(0.05)
        assert "the broker refuses this kit's messages" in uplink.faults()[0]
        assert "gateways acl" in uplink.faults()[0]
        assert outbox.depth() == 1  # kept for when the broker lets it through
        assert "broker refuses" in json.loads((tmp_path / "refusal.json").read_text())["fault"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        broker.stop()


async def test_a_refusal_is_blamed_on_its_own_topic_not_on_a_publish_beside_it(tmp_path: Path) -> None:
    """The uplink's heartbeat and its batches (or a worker's acks to many gateways) share one client: the
    broker's "Not authorized" for one topic must not make a publish that was taken look refused."""
    from protocol import PublishRefused, make_client, publish

    (tmp_path / "acl").write_text("topic write allowed/#\n")  # lines before any `user`: anonymous clients
    broker = Mosquitto(tmp_path, f"acl_file {tmp_path / 'acl'}\n")
    broker.start()
    try:
        async with make_client(BrokerSettings(port=broker.port, insecure_dev=True), "two-topics") as client:
            outcomes = await asyncio.gather(
                *(publish(client, topic, b"x") for topic in ("allowed/a", "denied/b", "allowed/c", "denied/d")),
                return_exceptions=True)
        assert [type(o).__name__ for o in outcomes] == ["NoneType", "PublishRefused", "NoneType", "PublishRefused"]
        assert all("authori" in o.reason.lower() for o in outcomes if isinstance(o, PublishRefused))
    finally:
        broker.stop()
