"""Tenancy at the broker: with the ACL generated from the registry, a gateway can publish only under its
own tenant and id. Real Mosquitto, mutual TLS, client certificates made in the test."""

from __future__ import annotations

import asyncio
from pathlib import Path

from central.embedded import EmbeddedCentral
from central.store.acl import mosquitto_acl
from protocol import Topics, make_client
from tests.central_support import batch, reading
from tests.conftest import Mosquitto
from tests.pki import ThrowawayCA
from tests.test_mutual_tls import CONFIG, pki, tls_broker, tls_settings  # noqa: F401 (fixtures)


def test_the_shipped_acl_example_is_what_the_registry_generates() -> None:
    assert (CONFIG / "mosquitto.acl.example").read_text() == mosquitto_acl([("demo-kommune", "gw-0001")])


async def test_a_gateway_can_publish_only_under_its_own_tenant_and_id(
    tmp_path: Path, pki: ThrowawayCA, tls_broker: Mosquitto  # noqa: F811
) -> None:
    central = EmbeddedCentral(tls_settings(pki, tls_broker.port, "dho-central"), tmp_path / "central.sqlite3")
    central.provision("gw-intruder", tenant="t1", patient="p-1")
    central.provision("gw-other-tenant", tenant="t2", patient="p-2")
    own = [reading(patient="p-1")]
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        async with make_client(tls_settings(pki, tls_broker.port, "gw-intruder"), "gw-intruder") as gw:
            # Its own id under another tenant (the old `pattern write dho/v1/+/%u/up/#` allowed this),
            # and another tenant's gateway: Mosquitto drops both (PUBACK "not authorized").
            await gw.publish(Topics("t2", "gw-intruder").readings, batch("gw-intruder", [reading(patient="p-1")]),
                             qos=1)
            await gw.publish(Topics("t2", "gw-other-tenant").readings,
                             batch("gw-other-tenant", [reading(patient="p-2")]), qos=1)
            await gw.publish(Topics("t1", "gw-intruder").readings, batch("gw-intruder", own), qos=1)
        async with asyncio.timeout(10):
            while central.count() < 1:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        c.cancel()
    assert [r.id for r in central.readings()] == [own[0].id]
    assert central.rejected == 0  # the forged ones never reached the central service
    central.close()
