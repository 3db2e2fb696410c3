"""Production transport: MQTT 5 over mutual TLS to Mosquitto configured with the shipped example
(certificate CN as username, per-gateway ACL). Certificates are made in the test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from central.embedded import EmbeddedCentral
from central.store.acl import mosquitto_acl
from gateway.service import Gateway
from gateway.settings import build_settings
from hardware_sims.home import SimulatedHome
from protocol import BrokerSettings, Topics, make_client
from tests.conftest import Mosquitto
from tests.pki import ThrowawayCA

CONFIG = Path(__file__).parent.parent / "config"


@pytest.fixture
def pki(tmp_path: Path) -> ThrowawayCA:
    return ThrowawayCA(tmp_path)


# The provisioned gateways of these tests: the ACL is generated from the registry, as in production.
REGISTRY = [("t1", "gw-tls-1"), ("t1", "gw-intruder"), ("t2", "gw-other-tenant")]


@pytest.fixture
def tls_broker(tmp_path: Path, pki: ThrowawayCA) -> Iterator[Mosquitto]:
    server_cert, server_key = pki.issue("localhost", server=True)
    acl = tmp_path / "acl"
    acl.write_text(mosquitto_acl(REGISTRY))
    # The shipped example's TLS lines, with this test's files.
    example = (CONFIG / "mosquitto.example.conf").read_text()
    lines = [line for line in example.splitlines()
             if line.split(" ")[0] in {"tls_version", "require_certificate", "use_identity_as_username"}]
    broker = Mosquitto(tmp_path, "\n".join([
        f"cafile {pki.ca_file}", f"certfile {server_cert}", f"keyfile {server_key}", f"acl_file {acl}", *lines, "",
    ]))
    broker.start()
    yield broker
    broker.stop()


def tls_settings(pki: ThrowawayCA, port: int, name: str) -> BrokerSettings:
    cert, key = pki.issue(name)
    return BrokerSettings(host="127.0.0.1", port=port, ca_file=pki.ca_file, cert_file=cert, key_file=key)


async def test_gateway_delivers_over_mutual_tls(tmp_path: Path, pki: ThrowawayCA, tls_broker: Mosquitto) -> None:
    central = EmbeddedCentral(tls_settings(pki, tls_broker.port, "dho-central"), tmp_path / "central.sqlite3")
    central.provision("gw-tls-1", tenant="t1", patient="p1")
    source = SimulatedHome(interval_s=0.005, count=4)
    gw_mqtt = tls_settings(pki, tls_broker.port, "gw-tls-1")
    gateway = Gateway(build_settings({
        "gateway": {"id": "gw-tls-1", "tenant": "t1", "patient": "p1", "data_dir": str(tmp_path / "gw")},
        "mqtt": gw_mqtt.model_dump(),
        "device_source": "simulated-home",
        "devices": [{"address": d.address, "kind": d.kind} for d in source.devices],
    }), source)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        g = tasks.create_task(gateway.run())
        while not (central.count() == 4 and gateway.outbox.depth() == 0):
            await asyncio.sleep(0.02)
        g.cancel()
        c.cancel()
    assert {r.patient for r in central.readings(gateway="gw-tls-1")} == {"p1"}


async def test_a_gateway_cannot_write_into_another_gateways_topics(
    tmp_path: Path, pki: ThrowawayCA, tls_broker: Mosquitto
) -> None:
    central = EmbeddedCentral(tls_settings(pki, tls_broker.port, "dho-central"), tmp_path / "central.sqlite3")
    central.provision("gw-tls-1", tenant="t1", patient="p1")
    forged = json.dumps({"v": 1, "gateway": "gw-victim", "batch": str(uuid.uuid4()),
                         "sent": datetime.now(UTC).isoformat(), "readings": []})
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        async with make_client(tls_settings(pki, tls_broker.port, "gw-intruder"), "gw-intruder") as intruder:
            # Mosquitto drops it (MQTT 5 PUBACK "not authorized"); the central service never sees it.
            await intruder.publish(Topics("t1", "gw-victim").readings, forged, qos=1)
        await asyncio.sleep(0.5)
        c.cancel()
    assert central.rejected == 0 and central.count() == 0


async def test_a_client_without_certificate_is_refused(pki: ThrowawayCA, tls_broker: Mosquitto) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(pki.ca_file))
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", tls_broker.port, tls_context=context, timeout=5):
            pass
