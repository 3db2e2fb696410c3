"""The consumer group against a real Mosquitto and a real database (SQLite and PostgreSQL): store, commit,
then ack; duplicates acked again and kept once; tenancy from the registry; status, Last Will and events
kept; shared subscriptions spread the load; a persistent session keeps what arrives while workers are down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from bench.fleet_sim import Fleet
from central.embedded import EmbeddedCentral
from protocol import Ack, BrokerSettings, Event, Status, Topics, make_client
from tests.central_support import batch, reading
from tests.conftest import Mosquitto


def plain(port: int) -> BrokerSettings:
    return BrokerSettings(port=port, insecure_dev=True)


@contextlib.asynccontextmanager
async def running(*centrals: EmbeddedCentral) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c.run()) for c in centrals]
    try:
        async with asyncio.timeout(10):
            for c in centrals:
                await c.ready.wait()
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class AckListener:
    """A gateway's view of `down/ack`, for every gateway at once."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.acks: list[tuple[str, Ack]] = []

    async def listen(self) -> None:
        async for message in self.client.messages:
            self.acks.append((str(message.topic), Ack.model_validate_json(message.payload)))  # type: ignore[arg-type]

    def ids(self) -> list[str]:
        return [str(i) for _, ack in self.acks for i in ack.ids]


@contextlib.asynccontextmanager
async def gateway_side(port: int) -> AsyncIterator[tuple[aiomqtt.Client, AckListener]]:
    async with make_client(plain(port), f"gw-side-{uuid.uuid4().hex[:6]}") as client:
        await client.subscribe("dho/v1/+/+/down/ack", qos=1)
        listener = AckListener(client)
        task = asyncio.create_task(listener.listen())
        try:
            yield client, listener
        finally:
            task.cancel()


async def until(condition: object, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_batch_sent_twice_is_stored_once_and_acked_twice(
    database_url: str, mosquitto: Mosquitto
) -> None:
    central = EmbeddedCentral(plain(mosquitto.port), database_url)
    central.provision("gw-1", tenant="t1", patient="p-1")
    readings = [reading("blood_pressure"), reading("spo2"), reading("body_weight")]
    async with running(central), gateway_side(mosquitto.port) as (client, acks):
        for _ in range(2):
            await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", readings), qos=1)
        await until(lambda: len(acks.ids()) == 6)
    assert central.count() == 3 and central.database.duplicate_ids() == 0
    assert central.database.count("observations") == 5  # blood pressure and spo2 each add a pulse
    assert {t for t, _ in acks.acks} == {Topics("t1", "gw-1").ack}
    assert sorted(acks.ids()) == sorted([str(r.id) for r in readings] * 2)
    assert central.worker.counts["duplicates"] == 3
    central.close()


async def test_a_poisoned_batch_is_refused_logged_not_acked_and_the_good_ones_go_on(
    database_url: str, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    central = EmbeddedCentral(plain(mosquitto.port), database_url)
    central.provision("gw-1", tenant="t1", patient="p-1")
    central.provision("gw-2", tenant="t2", patient="p-2")
    good = [reading(patient="p-1") for _ in range(3)]
    poison = [
        (Topics("t2", "gw-1").readings, batch("gw-1", [reading(patient="p-1")])),  # another tenant's topic
        (Topics("t1", "gw-unknown").readings, batch("gw-unknown", [reading(patient="p-1")])),  # not provisioned
        (Topics("t1", "gw-1").readings, batch("gw-1", [reading(patient="p-2")])),  # not this kit's patient
        (Topics("t1", "gw-1").readings, batch("gw-2", [reading(patient="p-1")])),  # says it is another gateway
        (Topics("t1", "gw-1").readings, b'{"v": 1, "gateway": "gw-1", "readings": [{"id": 5}]}'),  # invalid
        (Topics("t1", "gw-1").readings, b"{" + b" " * 10_000_000 + b"}"),  # 10 MB
    ]
    caplog.set_level(logging.WARNING, logger="central")
    async with running(central), gateway_side(mosquitto.port) as (client, acks):
        await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", good[:1]), qos=1)
        for topic, payload in poison:
            await client.publish(topic, payload, qos=1)
        await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", good[1:]), qos=1)
        await until(lambda: len(acks.ids()) == 3 and central.rejected == len(poison), timeout=30)
        await asyncio.sleep(0.3)
    assert sorted(acks.ids()) == sorted(str(r.id) for r in good)  # nothing refused was acked
    assert central.count() == 3
    reasons = [reason for _, reason in central.database.rejections()]
    assert any("belongs to tenant 't1', not 't2'" in r for r in reasons)
    assert any("unknown gateway 'gw-unknown'" in r for r in reasons)
    assert any("not the one provisioned" in r for r in reasons)
    assert any("over the 1,000,000-byte limit" in r for r in reasons)
    assert sum("refused a message" in r.message for r in caplog.records) == len(poison)
    assert "p-2" not in caplog.text  # no pseudonym in the log either
    central.close()


async def test_status_last_will_and_events_reach_the_registry(database_url: str, mosquitto: Mosquitto) -> None:
    central = EmbeddedCentral(plain(mosquitto.port), database_url)
    fleet = Fleet(plain(mosquitto.port), 1, tenants=1, prefix="st")
    (gw,) = fleet.gateways
    central.provision(gw.id, tenant=gw.tenant, patient=gw.patient)
    async with running(central):
        task = asyncio.create_task(fleet.run())
        await fleet.wait("connected", 10)
        fleet.measure(3)
        gw.uplink.post_event("storage_fault", {"reason": "disk full"})
        await fleet.wait("drained", 15)
        await until(lambda: central.database.gateways()[0].state == "online"
                    and len(central.database.events()) == 1)
        (record,) = central.database.gateways()
        assert (record.software_version, record.outbox_depth, record.plan, record.plan_version) == (
            "fleet-sim", 0, "standard", 1)
        assert record.last_seen is not None and record.last_seen > datetime(2026, 1, 1, tzinfo=UTC)
        (event,) = central.database.events()
        assert (event["kind"], event["detail"], event["tenant"]) == ("storage_fault", {"reason": "disk full"}, "st-t0")
        # The gateway stops: its offline status (the same payload as its Last Will) marks it offline.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await until(lambda: central.database.gateways()[0].state == "offline")
    assert central.count() == 3
    central.close()


async def test_the_last_will_of_a_gateway_that_vanishes_marks_it_offline(tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = EmbeddedCentral(plain(mosquitto.port), tmp_path / "c.sqlite3")
    central.provision("gw-9", tenant="t1", patient="p-9")
    topics = Topics("t1", "gw-9")
    offline = Status(gateway="gw-9", state="offline").model_dump_json()
    online = Status(gateway="gw-9", state="online", version="1.0", at=datetime.now(UTC)).model_dump_json()
    async with running(central):
        # mosquitto_pub keeps its connection while reading stdin; SIGKILL ends it without a DISCONNECT.
        process = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-p", str(mosquitto.port), "-i", "gw-9", "-q", "1", "-t", topics.status, "-l",
            "--will-topic", topics.status, "--will-payload", offline, "--will-qos", "1", "--will-retain",
            stdin=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None
        process.stdin.write(online.encode() + b"\n")
        await process.stdin.drain()
        await until(lambda: central.database.gateways()[0].state == "online")
        process.kill()
        await process.wait()
        await until(lambda: central.database.gateways()[0].state == "offline")
    central.close()


async def test_shared_subscription_spreads_a_fleet_over_two_workers_each_reading_stored_once(
    database_url: str, mosquitto: Mosquitto
) -> None:
    workers = [EmbeddedCentral(plain(mosquitto.port), database_url, identifier=f"w{i}") for i in (1, 2)]
    fleet = Fleet(plain(mosquitto.port), 20, prefix="sh", batch_size=5)
    for gateway, tenant, patient in fleet.registry():
        workers[0].provision(gateway, tenant=tenant, patient=patient)
    async with running(*workers):
        task = asyncio.create_task(fleet.run())
        await fleet.wait("connected", 20)
        total = fleet.measure(12)
        await fleet.wait("drained", 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert workers[0].count() == total == len(fleet.acked)
    assert workers[0].database.duplicate_ids() == 0
    assert all(w.worker.counts["stored"] > 0 for w in workers)  # both took a share
    assert sum(w.worker.counts["stored"] for w in workers) == total
    for w in workers:
        w.close()


async def test_what_arrives_while_every_worker_is_down_waits_in_the_persistent_session(
    database_url: str, mosquitto: Mosquitto
) -> None:
    central = EmbeddedCentral(plain(mosquitto.port), database_url, identifier="persistent-1")
    central.provision("gw-1", tenant="t1", patient="p-1")
    async with running(central):
        pass  # the session and its shared subscription now exist in the broker
    readings = [reading() for _ in range(10)]
    async with gateway_side(mosquitto.port) as (client, acks):
        # Published once each, while no worker is connected; this publisher never sends again.
        for r in readings:
            await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", [r]), qos=1)
        restarted = EmbeddedCentral(plain(mosquitto.port), database_url, identifier="persistent-1")
        async with running(restarted):
            await until(lambda: len(acks.ids()) == 10)
    assert restarted.count() == 10 and sorted(acks.ids()) == sorted(str(r.id) for r in readings)
    central.close()
    restarted.close()


def test_events_are_acked_with_their_id() -> None:
    from central.ingest.worker import Incoming, changes_and_acks
    from central.store import RegisteredGateway

    event = Event(gateway="gw-1", id=uuid.uuid4(), kind="storage_fault", at=datetime.now(UTC))
    changes, acks = changes_and_acks([Incoming(Topics("t1", "gw-1").events, event.model_dump_json().encode(), 1, 1)],
                                     {"gw-1": RegisteredGateway("gw-1", "t1", "p-1")}, now=datetime.now(UTC))
    assert [e.id for e in changes.events] == [str(event.id)]
    assert acks == [(Topics("t1", "gw-1").ack, Ack(ids=[event.id]))]
    assert json.loads(changes.events[0].detail) == {}


def test_a_questionnaire_is_stored_and_acked_without_a_device_observation() -> None:
    """The patient's answers from the page reach the central service (a worker that could not map them to
    FHIR crashed before, taking the consumer group's progress with it)."""
    from central.ingest.worker import Incoming, changes_and_acks
    from central.store import RegisteredGateway
    from gateway.readings import answers_to_wire, uuid7
    from zoning import Answers, Assessment, Zone

    answers = Answers(answered=datetime.now(UTC), answers={"breathlessness": "worse"})
    wire = answers_to_wire(uuid7(), "p-1", answers, Assessment(zone=Zone.YELLOW, fired=(), advice_keys=(),
                                                             profile="standard-copd", profile_version=1,
                                                             rules_hash="sha256:" + "0" * 64),
                           datetime.now(UTC))
    sent = batch("gw-1", [wire])
    changes, acks = changes_and_acks([Incoming(Topics("t1", "gw-1").readings, sent, 1, 1)],
                                     {"gw-1": RegisteredGateway("gw-1", "t1", "p-1")}, now=datetime.now(UTC))
    assert [(r.type, r.zone, r.observations) for r in changes.readings] == [("questionnaire", "yellow", ())]
    assert changes.rejections == []
    assert acks == [(Topics("t1", "gw-1").ack, Ack(ids=[wire.id]))]


def test_the_registry_learns_how_long_the_oldest_reading_has_waited() -> None:
    from datetime import timedelta

    from central.ingest.worker import Incoming, changes_and_acks
    from central.store import RegisteredGateway

    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    status = Status(gateway="gw-1", state="online", version="t", outbox_depth=4, outbox_oldest_s=5400.0, at=at)
    changes, _ = changes_and_acks([Incoming(Topics("t1", "gw-1").status, status.model_dump_json().encode(), 1, 1)],
                                  {"gw-1": RegisteredGateway("gw-1", "t1", "p-1")}, now=at + timedelta(seconds=1))
    (state,) = changes.states
    assert (state.outbox_depth, state.outbox_oldest_at) == (4, at - timedelta(minutes=90))


def test_a_batch_is_judged_at_the_time_it_is_given_and_refusals_are_returned_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """changes_and_acks() is pure: it reads no clock (the worker passes the time it received the batch)
    and logs nothing (a refusal is one of the changes; the worker reports it)."""
    from central.ingest.worker import Incoming, changes_and_acks
    from central.store import RegisteredGateway

    received = datetime(2020, 2, 29, 12, 0, tzinfo=UTC)  # not today: only a clock passed in gives this
    undated = Status(gateway="gw-1", state="online", version="t", outbox_depth=0)
    messages = [Incoming(Topics("t1", "gw-1").status, undated.model_dump_json().encode(), 1, 1),
                Incoming(Topics("t1", "gw-9").status, undated.model_dump_json().encode(), 2, 1)]
    registry = {"gw-1": RegisteredGateway("gw-1", "t1", "p-1")}
    with caplog.at_level(logging.DEBUG):
        changes, _ = changes_and_acks(messages, registry, now=received)
        again, _ = changes_and_acks(messages, registry, now=received)
    assert changes == again
    assert changes.seen == {"gw-1": received} and [s.at for s in changes.states] == [received]
    assert [r.topic for r in changes.rejections] == [Topics("t1", "gw-9").status]
    assert caplog.records == []


async def test_a_broker_gone_while_acking_is_a_reconnect_not_the_end_of_the_worker(tmp_path: Path) -> None:
    """The ack publish fails (the broker restarted): the worker must see an MqttError, which its run loop
    answers by reconnecting, and must not PUBACK what it could not ack (the broker sends it again)."""
    from central.ingest.worker import IngestWorker
    from central.store import Database

    class GoneBroker:
        def __init__(self) -> None:
            self.pubacks: list[int] = []
            self._client = self

        async def publish(self, *_args: object, **_kwargs: object) -> None:
            raise aiomqtt.MqttCodeError(4, "The client is not currently connected.")

        def ack(self, mid: int, _qos: int) -> None:
            self.pubacks.append(mid)

    database = Database(str(tmp_path / "central.sqlite3"))
    database.provision("gw-1", tenant="t1", patient="p-1")
    worker = IngestWorker(plain(1), database, identifier="w-test")
    broker = GoneBroker()
    message = aiomqtt.Message(Topics("t1", "gw-1").readings, batch("gw-1", [reading(patient="p-1")]), qos=1,
                              retain=False, mid=7, properties=None)
    with pytest.raises(aiomqtt.MqttError):
        await worker._handle(broker, [message])  # type: ignore[arg-type]
    assert broker.pubacks == [] and database.count() == 1  # stored; acked when the broker sends it again
    database.close()
