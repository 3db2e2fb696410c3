"""Issue 19.2: a refusal reaches a person. The central answers a message it will not store with a reason
code on the gateway's ack topic (protocol 1.1), never silence; the refusal is listed per gateway id."""

from __future__ import annotations

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
