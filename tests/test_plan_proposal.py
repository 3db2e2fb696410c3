"""The 14-day baseline proposal goes up (retained, `up/proposal`) as a document the clinician can turn into an order."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt

from central.cli import main as dho_central
from drivers.measurement import MeasurementKind as K
from gateway.plans import ProposalWatch, load_advice, load_profile
from gateway.storage import MemoryOutbox
from gateway.uplink import Uplink
from protocol import BaselineProposal, BrokerSettings, Topics
from tests.conftest import Mosquitto
from tests.zoning_support import OSLO
from zoning import PastReading, Zone, standard_plan

ENROLLED = date(2026, 11, 1)
PLAN = standard_plan(load_profile("standard-copd-scale2"), load_advice(), ENROLLED)


def days(spo2: list[int]) -> list[PastReading]:
    return [PastReading(id=f"b{i}", kind=K.SPO2, values={"spo2": Decimal(v), "pulse": Decimal(72)},
                        effective=datetime(2026, 11, 1 + i, 8, tzinfo=UTC), zone=Zone.GREEN)
            for i, v in enumerate(spo2)]


def test_the_proposal_is_sent_once_the_fourteen_days_are_over_and_again_only_when_it_changes() -> None:
    sent: list[bytes] = []
    clock = [datetime(2026, 11, 13, 12, tzinfo=UTC)]
    watch = ProposalWatch(sent.append, gateway="gw-0001", patient="p-7f3a9c", tz=OSLO, now=lambda: clock[0])
    history = days([90, 91, 89, 90, 90, 92, 90, 89, 90, 91, 90, 90, 89])
    assert not watch.check(history, PLAN)  # day 13 of 14: still the start-up period
    clock[0] = datetime(2026, 11, 14, 12, tzinfo=UTC)
    history = days([90, 91, 89, 90, 90, 92, 90, 89, 90, 91, 90, 90, 89, 90])
    assert watch.check(history, PLAN)
    clock[0] += timedelta(minutes=5)
    assert not watch.check(history, PLAN)  # the same proposal: not sent again
    assert watch.check(days([90, 91, 89, 90, 90, 92, 90, 89, 90, 91, 90, 90, 89, 84]), PLAN)  # a new spread
    proposal = BaselineProposal.model_validate_json(sent[0])
    spo2 = next(c for c in proposal.components if c.component == "spo2")
    assert (proposal.period, spo2.median, spo2.days) == ((date(2026, 11, 1), date(2026, 11, 14)), 90, 14)
    assert [(b.zone, b.op, b.limit) for b in spo2.proposal] == [("yellow", "<=", 87), ("red", "<=", 85)]
    assert (proposal.profile, proposal.rules_hash, proposal.plan_version) == (
        "standard-copd-scale2", PLAN.rules_hash, None)


async def first_message(port: int, topic: str) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", port, identifier="clinician") as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(20):
            async for m in client.messages:
                body: dict[str, Any] = json.loads(bytes(m.payload))  # type: ignore[arg-type,unused-ignore]
                return body
    raise AssertionError("no message")


async def test_the_proposal_is_retained_on_the_broker_for_the_clinician(mosquitto: Mosquitto) -> None:
    topics = Topics("demo-kommune", "gw-0001")
    uplink = Uplink(MemoryOutbox(), BrokerSettings(port=mosquitto.port, insecure_dev=True), topics, version="t")
    watch = ProposalWatch(uplink.publish_proposal, gateway="gw-0001", patient="p-7f3a9c", tz=OSLO,
                          now=lambda: datetime(2026, 11, 14, 12, tzinfo=UTC))
    assert watch.check(days([90, 91, 89, 90, 90, 92, 90, 89, 90, 91, 90, 90, 89, 90]), PLAN)
    task = asyncio.create_task(uplink.run())
    try:
        live = await first_message(mosquitto.port, topics.proposal)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Later, with the gateway gone: the clinician's tool still finds the latest proposal (retained).
    got = await first_message(mosquitto.port, topics.proposal)
    assert got == live
    # The clinician reads it as the start of an order.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(dho_central, ["plan", "proposal", "--tenant", "demo-kommune", "--gateway",
                                                     "gw-0001", "--broker", f"127.0.0.1:{mosquitto.port}",
                                                     "--insecure-dev"])
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "baseline 2026-11-01 to 2026-11-14, against standard-copd-scale2 v1"
    assert lines[1:4] == [
        "SpO2 (oximeter): median 90 %, spread 89.75 % to 90.25 %, 14 days, 14 readings",
        '  yellow at or below 87 % (standard 87 %)  ->  --set spo2.yellow=87 "ORDER"',
        '  red at or below 85 % (standard 83 %)  ->  --set spo2.red=85 "ORDER"',
    ]
    assert got["gateway"] == "gw-0001" and got["period"] == ["2026-11-01", "2026-11-14"]
    assert {c["component"] for c in got["components"]} == {"spo2", "pulse"}


async def test_a_running_gateway_proposes_from_the_fourteen_days_it_keeps_sealed_not_only_the_latest_day(
    tmp_path: Path,
) -> None:
    """The pipeline keeps only the latest day in memory; the proposal must come from the whole sealed history,
    also right after a restart."""
    from uuid import uuid4

    from gateway.service import Gateway, IdleDeviceSource
    from gateway.settings import build_settings

    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=13)

    def settings() -> Any:
        return build_settings({
            "gateway": {"id": "gw-prop", "tenant": "t", "patient": "p-prop", "data_dir": str(tmp_path / "gw")},
            "mqtt": {"host": "127.0.0.1", "port": 1, "insecure_dev": True},
            "zoning": {"profile": "standard-copd-scale2", "enrolled": (first - timedelta(days=1)).date().isoformat()},
            "web": {"enabled": False},
            "devices": [{"address": "AA:BB:CC:00:00:02", "kind": "spo2"}],
        })

    gateway = Gateway(settings(), IdleDeviceSource())
    for i in range(14):
        past = PastReading(id=str(uuid4()), kind=K.SPO2, values={"spo2": Decimal(90 + i % 2), "pulse": Decimal(72)},
                           effective=first + timedelta(days=i), zone=Zone.GREEN)
        await asyncio.to_thread(gateway.outbox.put, past.id, b"{}", None,
                                (K.SPO2.value, past.effective.timestamp(), past.model_dump_json().encode()))
    gateway.outbox.close()

    gateway = Gateway(settings(), IdleDeviceSource())  # a restart: in memory only the latest day
    assert len(gateway.pipeline.history) == 1
    sent: list[bytes] = []
    gateway.proposals._send = sent.append
    await gateway._send_proposal()
    gateway.outbox.close()
    (document,) = [json.loads(b) for b in sent]
    (spo2,) = [c for c in document["components"] if c["component"] == "spo2"]
    assert (spo2["days"], spo2["readings"]) == (14, 14)
