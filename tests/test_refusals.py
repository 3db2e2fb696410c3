"""Issue 19.2: a refusal reaches a person. The central answers a message it will not store with a reason
code on the gateway's ack topic (protocol 1.1), never silence; the refusal is listed per gateway id."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from central.cli import main as central_main
from central.embedded import EmbeddedCentral
from protocol import Ack, Event, Topics
from tests.central_support import batch, reading
from tests.conftest import Mosquitto
from tests.test_central_ingest import gateway_side, plain, running, until


async def test_the_central_answers_every_refused_batch_with_a_reason_code_and_lists_it(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "central.db"
    central = EmbeddedCentral(plain(mosquitto.port), db)
    central.provision("gw-1", tenant="t1", patient="p-registered")
    unknown = [reading(patient="p-secret-1")]
    stranger = [reading(patient="p-secret-2")]
    other_tenant = [reading(patient="p-registered")]
    event = Event(gateway="gw-new", id=uuid.uuid4(), kind="storage_fault", at=unknown[0].received)
    async with running(central), gateway_side(mosquitto.port) as (client, acks):
        await client.publish(Topics("t1", "gw-new").readings, batch("gw-new", unknown), qos=1)
        await client.publish(Topics("t1", "gw-new").events, event.model_dump_json(), qos=1)
        await client.publish(Topics("t1", "gw-1").readings, batch("gw-1", stranger), qos=1)
        await client.publish(Topics("t2", "gw-1").readings, batch("gw-1", other_tenant), qos=1)
        await client.publish(Topics("t1", "gw-1").readings, b'{"v": 1, "readings": [{"id": 5}]}', qos=1)
        await until(lambda: sum(len(a.refused) for _, a in acks.acks) == 5)
    answered = {(topic, r.code): r for topic, ack in acks.acks for r in ack.refused}
    assert all(not ack.ids for _, ack in acks.acks)  # nothing refused is acknowledged
    new = Topics("t1", "gw-new").ack
    assert sorted((r.topic, tuple(r.ids)) for t, a in acks.acks if t == new for r in a.refused) == [
        ("events", (event.id,)), ("readings", (unknown[0].id,))]
    assert "dho-central gateways register" in answered[(new, "unknown_gateway")].detail
    assert answered[(Topics("t1", "gw-1").ack, "patient_not_registered")].ids == [stranger[0].id]
    assert answered[(Topics("t2", "gw-1").ack, "wrong_tenant")].ids == [other_tenant[0].id]
    assert answered[(Topics("t1", "gw-1").ack, "invalid_payload")].ids == []
    for r in answered.values():  # no pseudonym ever goes back on the wire in a refusal
        assert "p-secret" not in r.detail and "p-registered" not in r.detail
    central.close()

    assert central_main(["gateways", "refusals", "--db", str(db), "--gateway", "gw-new"]) == 0
    out = capsys.readouterr().out
    assert out.count("Z gw-new ") == 2 and "unknown_gateway" in out and "gw-1" not in out
    assert central_main(["gateways", "refusals", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["code"] for r in listed) == sorted(
        ["unknown_gateway", "unknown_gateway", "patient_not_registered", "wrong_tenant", "invalid_payload"])
    assert "p-secret" not in json.dumps(listed)


def test_an_ack_without_refusals_is_what_a_1_0_gateway_reads() -> None:
    """Protocol 1.1 is additive: an ack of stored ids has no `refused` key on the wire."""
    ack = Ack(ids=[uuid.uuid4()])
    assert "refused" not in json.loads(ack.wire_json())
    assert Ack.model_validate_json(ack.wire_json()) == ack




def test_a_database_of_schema_version_2_gets_the_refusal_columns_and_keeps_its_rejections(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from central.store import Database, migrations

    url = f"sqlite:///{tmp_path}/v2.sqlite3"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the rejections table as schema versions 1 and 2 made it
        conn.execute(sa.text("CREATE TABLE rejections (seq INTEGER PRIMARY KEY, topic VARCHAR(300) NOT NULL, "
                             "reason VARCHAR(500) NOT NULL, size INTEGER NOT NULL, at DATETIME NOT NULL)"))
        conn.execute(sa.text("INSERT INTO rejections (topic, reason, size, at) VALUES "
                             "('dho/v1/t1/gw-old/up/readings', 'unknown gateway', 10, '2026-01-01 00:00:00')"))
        migrations._baseline(conn)  # the other tables (rejections exists: left as it is)
        migrations._worklist(conn)
        conn.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO schema_version VALUES (2)"))
    engine.dispose()
    db = Database(url)
    try:
        (old,) = db.refusals()
        assert (old.gateway, old.code, old.reason) == (None, None, "unknown gateway")  # kept, from before 1.1
        with db.engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.LATEST == 3
    finally:
        db.close()


async def test_a_kit_the_central_does_not_know_keeps_its_readings_backs_off_and_says_so_until_registered(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19: the central refused every batch of an unregistered kit, and the gateway said nothing."""
    import logging

    from gateway.service import Gateway
    from gateway.settings import load_settings
    from hardware_sims.home import SimulatedHome
    from tests.support import cli, config_for

    caplog.set_level(logging.INFO)
    data = tmp_path / "gw"
    data.mkdir()
    config = config_for(data, mosquitto.port)
    text = config.read_text().replace("ack_timeout_s = 30", "ack_timeout_s = 0.3")
    config.write_text(text.replace("refusal_pause_s = 30", "refusal_pause_s = 1").replace(
        "refusal_pause_max_s = 1800", "refusal_pause_max_s = 2"))
    settings = load_settings(config)
    g = settings.gateway
    source = SimulatedHome(interval_s=0.005, count=3)
    gateway = Gateway(settings, source)
    central = EmbeddedCentral(plain(mosquitto.port), tmp_path / "central.db")  # gw not registered
    async with asyncio.TaskGroup() as tasks:
        c = tasks.create_task(central.run())
        await central.ready.wait()
        run = tasks.create_task(gateway.run())
        await until(lambda: gateway.uplink.refusal is not None and source.sent == 3, timeout=20)
        refused_at = central.rejected
        await asyncio.sleep(3)
        # Held back: with a 0.3 s ack timeout and no pause the 3 readings would have gone ~10 times more.
        reading_refusals = [r for r in central.database.refusals(g.id, limit=1000) if r.topic.endswith("readings")]
        assert 1 <= len(reading_refusals) <= 6, len(reading_refusals)  # 3 batches at first, then a few rounds
        assert central.rejected >= refused_at
        assert gateway.outbox.depth() == 3  # kept, every one
        fault = "the central service does not know this gateway: register it (dho-central gateways register"
        facts = await asyncio.to_thread(gateway.service_facts)  # what the technician page shows
        assert any(f.startswith(fault) for f in facts.faults), facts.faults
        shown = await asyncio.to_thread(cli, "status", "--config", str(config))
        assert shown.returncode == 1 and f"FAULT: {fault}" in shown.stdout, shown.stdout + shown.stderr

        central.provision(g.id, tenant=g.tenant, patient=g.patient)  # the operator registers the kit
        await until(lambda: gateway.outbox.depth() == 0 and central.count() == 3, timeout=20)
        await until(lambda: gateway.uplink.refusal is None and len(central.events(g.id)) >= 2, timeout=20)
        facts = await asyncio.to_thread(gateway.service_facts)
        assert not any("central service" in f for f in facts.faults)
        assert not (data / "central-refusal.json").exists()
        run.cancel()
        c.cancel()
    kinds = [e["kind"] for e in central.events(g.id)]
    assert kinds.count("refused_by_central") == 1 and kinds.count("refusal_cleared") == 1, kinds  # one per change
    refused = next(e for e in central.events(g.id) if e["kind"] == "refused_by_central")
    assert refused["detail"]["code"] == "unknown_gateway"
    info = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert g.patient not in info  # no pseudonym in the logs at INFO
    assert "refuses what this gateway sends (unknown_gateway" in info
    central.close()


def test_register_applies_a_registration_once_with_an_audit_record_and_refuses_another_tenants_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from central.ca import TenantCA
    from central.store import Database

    db = str(tmp_path / "central.db")
    TenantCA.create(tmp_path / "ca-bergen", "bergen-kommune")
    registration = tmp_path / "registration.json"
    registration.write_text(json.dumps({"kind": "dho-gateway-registration", "v": 1, "gateway": "gw-7",
                                        "tenant": "oslo-kommune", "patient": "p-old", "reason": "provision"}))
    assert central_main(["gateways", "register", "--db", db, "--ca", str(tmp_path / "ca-bergen"),
                         str(registration)]) == 2
    assert "the CA in" in capsys.readouterr().err
    assert central_main(["gateways", "register", "--db", db, "--out", str(tmp_path / "x.pem"),
                         str(registration)]) == 2  # signing needs the CA
    for _ in range(2):  # the second time: already in force, nothing written
        assert central_main(["gateways", "register", "--db", db, str(registration)]) == 0
    registration.write_text(registration.read_text().replace("p-old", "p-new").replace("provision", "reissue"))
    assert central_main(["gateways", "register", "--db", db, str(registration)]) == 0
    out = capsys.readouterr().out
    assert "re-registered for tenant oslo-kommune (patient changed; audit record written)" in out
    assert "p-old" not in out and "p-new" not in out
    database = Database(db)
    try:
        assert database.registered(["gw-7"])["gw-7"].patient == "p-new"
        with database.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT action, detail FROM audit ORDER BY seq").all()
    finally:
        database.close()
    assert [r[0] for r in rows] == ["gateway_registered", "gateway_reregistered"]
    assert rows[1][1] == "reissue: tenant oslo-kommune -> oslo-kommune, patient p-old -> p-new"
