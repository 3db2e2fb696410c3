"""End to end through a real Mosquitto: a plan written and signed by two people with `dho-central plan`
reaches a running gateway, changes the zone of the next reading exactly as ordered, survives a restart,
and an old plan replayed after a broker restart does not roll it back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from central.cli import main as dho_central
from central.embedded import EmbeddedCentral
from drivers.uuids import BLOOD_PRESSURE_MEASUREMENT
from gateway.service import BaseDeviceSource, Gateway
from gateway.settings import build_settings
from hardware_sims.blood_pressure import BloodPressureMonitor, CuffResult
from protocol import BrokerSettings, Envelope
from tests.conftest import Mosquitto
from tests.support import ROOT, config_for

TENANT, GATEWAY, PATIENT = "test-kommune", "gw-test-1", "p-test"
GattSink = Any


class Cuff(BaseDeviceSource):
    """A device source that measures when the test says so."""

    def __init__(self) -> None:
        self.monitor = BloodPressureMonitor(address="F0:5E:1A:00:00:01")
        self.queue: asyncio.Queue[CuffResult] = asyncio.Queue()

    async def run(self, sink: GattSink) -> None:
        while True:
            result = await self.queue.get()
            clock = datetime.now(ZoneInfo("Europe/Oslo")).replace(tzinfo=None, microsecond=0)
            await sink(self.monitor.address, BLOOD_PRESSURE_MEASUREMENT, self.monitor.measurement(result, clock))


def central(*args: str | Path) -> int:
    return dho_central(["plan", *(str(a) for a in args)])


def clinic(tmp: Path) -> dict[str, Path]:
    """Keys for the tenant root, a GP and a nurse, and the root-signed trust store: the set-up once per tenant."""
    keys = tmp / "keys"
    assert central("keygen", "--id", "root-2026", "--role", "root", "--holder", "Helse Test root", "--out", keys) == 0
    assert central("keygen", "--id", "gp-hansen", "--role", "prescriber", "--holder", "Dr. Kari Hansen, GP",
                   "--out", keys) == 0
    assert central("keygen", "--id", "rn-olsen", "--role", "verifier", "--holder", "Nurse Ola Olsen", "--out",
                   keys) == 0
    store = tmp / "trust-store.json"
    assert central("trust-store", "--tenant", TENANT, "--version", "1", "--key", keys / "gp-hansen.pub.json",
                   "--key", keys / "rn-olsen.pub.json", "--root-key", keys / "root-2026.key", "--root-pub",
                   keys / "root-2026.pub.json", "--out", store) == 0
    return {"keys": keys, "store": store, "root_pub": keys / "root-2026.pub.json", "audit": tmp / "audit.sqlite3"}


def write_and_sign(tmp: Path, c: dict[str, Path], version: int, systolic_yellow_low: int, order: str) -> Path:
    plan = tmp / f"plan-v{version}.json"
    assert central("draft", "--tenant", TENANT, "--gateway", GATEWAY, "--patient", PATIENT, "--version",
                   str(version), "--profile", "standard-blood-pressure", "--set",
                   f"bp.systolic.yellow.low={systolic_yellow_low}", order, "--enrolled", "2026-01-01",
                   "--audit", c["audit"], "--out", plan) == 0
    k = c["keys"]
    assert central("sign", plan, "--key", k / "gp-hansen.key", "--pub", k / "gp-hansen.pub.json") == 0
    assert central("sign", plan, "--key", k / "rn-olsen.key", "--pub", k / "rn-olsen.pub.json") == 0
    assert central("verify", plan, "--trust-store", c["store"], "--root-pub", c["root_pub"]) == 0
    return plan


async def publish(plan: Path, c: dict[str, Path], port: int) -> None:
    code = await asyncio.to_thread(central, "publish", plan, "--trust-store", c["store"], "--root-pub", c["root_pub"],
                                   "--broker", f"127.0.0.1:{port}", "--insecure-dev", "--audit", c["audit"])
    assert code == 0


class Watcher:
    """What the central side hears: events and the latest status."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.events: list[dict[str, Any]] = []
        self.status: dict[str, Any] = {}

    async def run(self, ready: asyncio.Event) -> None:
        while True:  # through broker restarts
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="watcher") as client:
                    await client.subscribe(f"dho/v1/{TENANT}/{GATEWAY}/up/#", qos=1)
                    ready.set()
                    async for m in client.messages:
                        body = json.loads(bytes(m.payload))  # type: ignore[arg-type,unused-ignore]
                        if m.topic.matches("+/+/+/+/up/events"):
                            self.events.append(body)
                        elif m.topic.matches("+/+/+/+/up/status"):
                            self.status = body
            await asyncio.sleep(0.1)

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]


async def wait_until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[None]:
    task = asyncio.create_task(gateway.run())
    try:
        await wait_until(gateway.uplink.connected.is_set)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def settings_for(tmp: Path, port: int, c: dict[str, Path]) -> Any:
    return build_settings({
        "gateway": {"id": GATEWAY, "tenant": TENANT, "patient": PATIENT, "data_dir": str(tmp / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": port, "insecure_dev": True},
        "sync": {"ack_timeout_s": 1},
        "zoning": {"profile": "standard-blood-pressure", "enrolled": "2026-01-01"},
        "plans": {"trust_store": str(c["store"]),
                  "root_key": json.loads(c["root_pub"].read_text())["public_key"]},
        "device_source": "test-cuff",
        "devices": [{"address": "F0:5E:1A:00:00:01", "kind": "blood_pressure", "serial": "SIMBPM0001"}],
    })


async def test_a_plan_signed_by_two_people_reaches_the_gateway_and_changes_the_next_zone_as_ordered(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str],
) -> None:
    c = clinic(tmp_path)
    broker = BrokerSettings(port=mosquitto.port, insecure_dev=True)
    receiver = store = EmbeddedCentral(broker, tmp_path / "central.sqlite3")
    receiver.provision(GATEWAY, tenant=TENANT, patient=PATIENT)
    watcher = Watcher(mosquitto.port)
    cuff = Cuff()
    gateway = Gateway(settings_for(tmp_path, mosquitto.port, c), cuff)
    async with asyncio.TaskGroup() as tasks:
        watching = asyncio.Event()
        helpers = [tasks.create_task(receiver.run()), tasks.create_task(watcher.run(watching))]
        await receiver.ready.wait()
        await watching.wait()
        async with running(gateway):
            # Before any plan: the standard profile's systolic <= 110 is yellow.
            await cuff.queue.put(CuffResult(systolic=106, diastolic=68, pulse=72))
            await wait_until(lambda: store.count() == 1)
            standard = store.readings()[0].assessment
            assert (standard.zone, standard.plan_version, standard.plan_hash) == ("yellow", None, None)

            plan_v1 = write_and_sign(tmp_path, c, 1, 100, "GP order 2026-11-02")
            capsys.readouterr()
            assert central("diff", plan_v1) == 0
            assert "systolic pressure yellow at or below 100 mmHg instead of 110 mmHg, GP order 2026-11-02" in (
                capsys.readouterr().out)
            await publish(plan_v1, c, mosquitto.port)
            await wait_until(lambda: "plan_applied" in watcher.kinds())
            signed_hash = Envelope.parse(plan_v1.read_bytes()).hash
            assert watcher.events[-1]["detail"]["hash"] == signed_hash

            # Exactly as ordered: 106 is now green, 100 (the new inclusive bound) yellow.
            await cuff.queue.put(CuffResult(systolic=106, diastolic=69, pulse=72))
            await cuff.queue.put(CuffResult(systolic=100, diastolic=66, pulse=72))
            await wait_until(lambda: store.count() == 3)
            after = [r.assessment for r in store.readings()[1:]]
            assert [a.zone for a in after] == ["green", "yellow"]
            assert {(a.plan_version, a.plan_hash) for a in after} == {(1, signed_hash)}
            assert after[0].rules_hash != standard.rules_hash
            await wait_until(lambda: watcher.status.get("plan_version") == 1)
            assert watcher.status["plan_hash"] == signed_hash

        # A restart comes back with the plan, never with the standard profile; the retained plan
        # delivered again on connect is recognised, not re-applied or rejected.
        watcher.events.clear()
        gateway = Gateway(settings_for(tmp_path, mosquitto.port, c), cuff)
        assert gateway.pipeline.plan.plan_hash == signed_hash
        async with running(gateway):
            await cuff.queue.put(CuffResult(systolic=106, diastolic=70, pulse=72))
            await wait_until(lambda: store.count() == 4)
            assert store.readings()[3].assessment.zone == "green"
            plan_v2 = write_and_sign(tmp_path, c, 2, 95, "GP order 2026-11-20")
            await publish(plan_v2, c, mosquitto.port)
            await wait_until(lambda: "plan_applied" in watcher.kinds())
            assert "plan_rejected" not in watcher.kinds()

            # The broker restarts and an old retained plan (v1) is replayed: rejected, v2 stays.
            mosquitto.stop()
            mosquitto.start()
            async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="replayer") as replayer:
                old = json.dumps({"v": 1, "plan": json.loads(plan_v1.read_bytes())})
                await replayer.publish(f"dho/v1/{TENANT}/{GATEWAY}/down/config", old, qos=1, retain=True)
            await wait_until(lambda: "plan_rejected" in watcher.kinds(), timeout=30)
            rejected = next(e for e in watcher.events if e["kind"] == "plan_rejected")
            assert rejected["detail"]["reason"] == "plan v1 is not newer than v2 in force (an old plan or a replay)"
            await cuff.queue.put(CuffResult(systolic=98, diastolic=66, pulse=72))
            await wait_until(lambda: store.count() == 5, timeout=30)
            last = store.readings()[4].assessment
            assert (last.zone, last.plan_version) == ("green", 2)  # 98 > 95: green under v2, yellow under v1
        for helper in helpers:
            helper.cancel()

    capsys.readouterr()
    assert central("audit", "--audit", c["audit"]) == 0
    trail = capsys.readouterr().out
    signers = "ordered by Dr. Kari Hansen, GP (key gp-hansen); verified by Nurse Ola Olsen (key rn-olsen)"
    assert trail.count(signers) == 2
    assert "systolic pressure yellow at or below 95 mmHg instead of 100 mmHg, GP order 2026-11-20" in trail


async def test_a_new_trust_store_is_published_with_each_gateways_last_plan(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str],
) -> None:
    c = clinic(tmp_path)
    plan = write_and_sign(tmp_path, c, 1, 100, "GP order 2026-11-02")
    await publish(plan, c, mosquitto.port)
    rotated = tmp_path / "trust-store-v2.json"
    assert central("trust-store", "--tenant", TENANT, "--version", "2", "--key", c["keys"] / "gp-hansen.pub.json",
                   "--root-key", c["keys"] / "root-2026.key", "--root-pub", c["root_pub"], "--out", rotated) == 0
    capsys.readouterr()
    code = await asyncio.to_thread(central, "publish-trust-store", rotated, "--root-pub", c["root_pub"],
                                   "--gateway", GATEWAY, "--broker", f"127.0.0.1:{mosquitto.port}", "--insecure-dev",
                                   "--audit", c["audit"])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"published trust store v2 to gateway {GATEWAY} with its plan v1"
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="reader") as client:
        await client.subscribe(f"dho/v1/{TENANT}/{GATEWAY}/down/config", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    retained = json.loads(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
    assert retained["trust_store"]["payload"]["version"] == 2
    assert Envelope.parse(json.dumps(retained["plan"]).encode()).hash == Envelope.parse(plan.read_bytes()).hash


async def test_the_applied_plan_survives_a_kill_9_of_the_gateway(
    tmp_path: Path, mosquitto: Mosquitto,
) -> None:
    """`dho-gateway run` as a process: the plan is applied, the process is killed (no clean shutdown), and the
    restarted gateway judges by the plan, never by the standard profile."""
    c = clinic(tmp_path)
    data = tmp_path / "gw"
    data.mkdir()
    config = config_for(data, mosquitto.port)
    text = config.read_text().replace('# trust_store = "/etc/dho-gateway/trust-store.json"',
                                      f'trust_store = "{c["store"]}"')
    text = text.replace('# root_key = "base64 of the 32-byte Ed25519 public key"',
                        f'root_key = "{json.loads(c["root_pub"].read_text())["public_key"]}"')
    text = text.replace('id = "gw-0001"', f'id = "{GATEWAY}"')
    text = text.replace('tenant = "demo-kommune"', f'tenant = "{TENANT}"')
    config.write_text(text.replace('patient = "p-7f3a9c"', f'patient = "{PATIENT}"'))
    watcher = Watcher(mosquitto.port)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    plan = write_and_sign(tmp_path, c, 1, 100, "GP order 2026-11-02")
    gateway = start()
    try:
        async with asyncio.TaskGroup() as tasks:
            watching = asyncio.Event()
            watch = tasks.create_task(watcher.run(watching))
            await watching.wait()
            await wait_until(lambda: watcher.status.get("state") == "online", timeout=30)
            await publish(plan, c, mosquitto.port)
            await wait_until(lambda: "plan_applied" in watcher.kinds(), timeout=30)
            gateway.send_signal(signal.SIGKILL)
            gateway.wait(timeout=10)
            await wait_until(lambda: watcher.status.get("state") == "offline", timeout=30)  # the Last Will
            # Events are durable: with no central service here to ack it, the plan_applied from before the
            # kill is sent again after the restart, under its own id. Only a NEW plan event would be wrong.
            before = {e["id"] for e in watcher.events}
            watcher.events.clear()
            gateway = start()
            await wait_until(lambda: watcher.status.get("state") == "online", timeout=30)
            assert watcher.status["plan_version"] == 1
            assert watcher.status["plan_hash"] == Envelope.parse(plan.read_bytes()).hash
            await asyncio.sleep(0.5)  # the retained plan, delivered again on connect, is the one in force
            new = [e["kind"] for e in watcher.events if e["id"] not in before]
            assert "plan_rejected" not in new and "plan_applied" not in new
            watch.cancel()
    finally:
        gateway.kill()
        gateway.wait(timeout=10)
