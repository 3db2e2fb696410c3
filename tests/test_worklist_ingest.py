"""Alerts through the real ingest path (a real Mosquitto, the consumer-group worker, SQLite and
PostgreSQL): a red reading is acked only with its alert stored; refused messages (an unknown kit, a kit
on another tenant's topic, a reading for a patient the registry does not know) are alerts for the
coordinator of the kit's tenant, never dropped and never naming the stranger's pseudonym."""

from __future__ import annotations

import asyncio

from central.embedded import EmbeddedCentral
from central.worklist import Worklist
from protocol import BrokerSettings, Topics
from tests.central_support import batch, reading
from tests.conftest import Mosquitto
from tests.test_central_ingest import gateway_side, running, until


async def test_reds_and_refusals_through_the_worker_are_alerts(database_url: str, mosquitto: Mosquitto) -> None:
    central = EmbeddedCentral(BrokerSettings(port=mosquitto.port, insecure_dev=True), database_url)
    central.provision("gw-1", tenant="t1", patient="p-1")
    central.provision("gw-2", tenant="t2", patient="p-2")
    wl = Worklist(central.database)
    red = reading("spo2", patient="p-1", zone="red", values={"spo2": "87", "pulse": "99"})
    async with running(central), gateway_side(mosquitto.port) as (client, acks):
        await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", [red]), qos=1)
        await client.publish(Topics("t1", "gw-unknown").readings, batch("gw-unknown", [reading()]), qos=1)
        await client.publish(Topics("t2", "gw-1").readings, batch("gw-1", [reading(patient="p-1")]), qos=1)
        await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", [reading(patient="p-stranger")]), qos=1)
        await until(lambda: acks.ids() == [str(red.id)] and central.rejected == 3)
        await asyncio.sleep(0.2)
        # Acked: so its alert was committed with it.
        t1 = {(a.kind, a.gateway): a for a in wl.alerts("t1")}
    assert set(t1) == {("reading", "gw-1"), ("refused", "gw-unknown"), ("refused", "gw-1")}
    assert t1[("reading", "gw-1")].severity == "red" and t1[("reading", "gw-1")].subject == "spo2"
    refused = t1[("refused", "gw-1")]
    assert refused.patient == "p-1" and refused.count == 2  # the wrong topic and the stranger's reading
    assert all("p-stranger" not in a.detail for a in t1.values())
    assert t1[("refused", "gw-unknown")].patient == ""
    assert wl.alerts("t2") == []  # gw-1's mistakes are its own tenant's business
    detail = wl.alert("t1", t1[("reading", "gw-1")].id)
    assert detail is not None and [r.id for r in detail.readings] == [str(red.id)]
    central.close()
