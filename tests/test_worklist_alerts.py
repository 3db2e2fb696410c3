"""Alerts made in the ingest transaction, on SQLite and a real PostgreSQL: a red or yellow reading opens
one, a second of the same kind joins the open one, a duplicate adds nothing, a refused kit is an alert
for its tenant; the nurses' actions with optimistic concurrency; a silent kit; tenants never mix."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from central.store import SCHEMA_VERSION, Changes, Database, GatewayState, NewEvent, NewReading, NewRejection
from central.store import schema as t
from central.worklist import Conflict, NotAllowed, User, Worklist

AT = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)


def red(patient: str = "p-1", kind: str = "blood_pressure", zone: str = "red", *, tenant: str = "t1",
        at: datetime = AT, reading_id: str | None = None) -> NewReading:
    return NewReading(id=reading_id or str(uuid.uuid4()), tenant=tenant, gateway=f"gw-{patient}", patient=patient,
                      type=kind, effective=at, zone=zone, body='{"components": {}}')


def nurse(name: str = "kari", tenant: str = "t1") -> User:
    return User(name, tenant, "nurse", "x")


def test_the_schema_is_at_version_2_with_the_worklist_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert SCHEMA_VERSION == 3  # 3: the refusal codes (protocol 1.1)
        names = set(sa.inspect(db.engine).get_table_names())
        assert {"alerts", "alert_readings", "alert_events", "alert_notes", "users", "audit"} <= names
    finally:
        db.close()


def test_a_database_at_version_1_is_migrated_to_2_keeping_its_readings(tmp_path: object) -> None:
    from central.store import migrations

    url = f"sqlite:///{tmp_path}/old.sqlite3"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        migrations._baseline(conn)
        conn.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO schema_version VALUES (1)"))
    engine.dispose()
    db = Database(url)
    try:
        db.commit(Changes(readings=[red()]))
        assert len(Worklist(db).alerts("t1")) == 1
        with db.engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.LATEST
    finally:
        db.close()


def test_reds_and_yellows_open_alerts_in_the_batch_transaction_and_join_the_open_one(database_url: str) -> None:
    db = Database(database_url)
    wl = Worklist(db)
    try:
        first = red()
        done = db.commit(Changes(readings=[first, red(zone="green"), red(kind="spo2", zone="yellow")]))
        assert done.new_alerts == 2
        again = red(at=AT + timedelta(hours=2))
        assert db.commit(Changes(readings=[again, first])).new_alerts == 0  # joins; the duplicate adds nothing
        alerts = wl.alerts("t1")
        assert [(a.severity, a.subject, a.count) for a in alerts] == [("red", "blood_pressure", 2),
                                                                      ("yellow", "spo2", 1)]
        detail = wl.alert("t1", alerts[0].id)
        assert detail is not None
        assert {r.id for r in detail.readings} == {first.id, again.id}
        assert [line.action for line in detail.trail] == ["opened", "joined"]
        assert alerts[0].measured_at == AT and alerts[0].latest_at == AT + timedelta(hours=2)
        # Closed: the next red of that kind opens a new alert.
        wl.act(nurse(), alerts[0].id, "done", version=alerts[0].version)
        assert db.commit(Changes(readings=[red(at=AT + timedelta(days=1))])).new_alerts == 1
        assert wl.alerts("t2") == []
    finally:
        db.close()


def test_two_workers_storing_reds_for_one_patient_at_once_make_one_alert(database_url: str) -> None:
    db = Database(database_url)
    try:
        start = threading.Barrier(4)

        def store() -> None:
            start.wait()
            for _ in range(3):
                db.commit(Changes(readings=[red()]))

        threads = [threading.Thread(target=store) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        alerts = Worklist(db).alerts("t1")
        assert len(alerts) == 1 and alerts[0].count == 12
    finally:
        db.close()


def test_a_refused_kit_is_an_alert_for_its_tenant_once_however_often_it_retries(database_url: str) -> None:
    db = Database(database_url)
    try:
        topic = "dho/v1/t1/gw-unknown/up/readings"
        for _ in range(3):
            db.commit(Changes(rejections=[NewRejection(topic, "unknown gateway 'gw-unknown': not provisioned", 99)]))
        db.commit(Changes(rejections=[NewRejection("not/a/topic", "not a v1 upstream topic", 5)]))
        alerts = Worklist(db).alerts("t1")
        assert [(a.kind, a.gateway, a.count, a.patient) for a in alerts] == [("refused", "gw-unknown", 3, "")]
        assert "not provisioned" in alerts[0].detail
        assert db.count("rejections") == 4
    finally:
        db.close()


def test_two_nurses_at_once_one_wins_the_other_is_told_and_tenants_never_mix(database_url: str) -> None:
    db = Database(database_url)
    wl = Worklist(db)
    try:
        db.commit(Changes(readings=[red()]))
        (alert,) = wl.alerts("t1")
        assert wl.act(nurse("kari"), alert.id, "take", version=alert.version) == alert.version + 1
        with pytest.raises(Conflict) as told:
            wl.act(nurse("ola"), alert.id, "done", version=alert.version)
        assert told.value.current.alert.assignee == "kari"
        with pytest.raises(LookupError):
            wl.act(nurse("eve", tenant="t2"), alert.id, "take", version=alert.version + 1)
        assert wl.alert("t2", alert.id) is None and wl.exists_elsewhere("t2", alert.id) == "t1"
        v = wl.act(nurse("ola"), alert.id, "note", version=alert.version, text="Ringte pasienten.")
        v = wl.act(nurse("kari"), alert.id, "escalate", version=v, to="gp")
        with pytest.raises(NotAllowed):
            wl.act(nurse("kari"), alert.id, "done", version=v)
        detail = wl.alert("t1", alert.id)
        assert detail is not None and detail.alert.state == "escalated"
        assert [(x.actor, x.action) for x in detail.trail][1:] == [("kari", "taken"), ("ola", "noted"),
                                                                   ("kari", "escalated")]
        assert [n.detail for n in detail.notes] == ["Ringte pasienten."]
        assert [(x[1], x[2]) for x in wl.audit_trail("t1")][:3] == [("kari", "escalated"), ("ola", "noted"),
                                                                    ("kari", "taken")]
        assert wl.audit_trail("t2") == []
    finally:
        db.close()


def test_a_kit_silent_longer_than_allowed_is_an_alert_once(database_url: str) -> None:
    db = Database(database_url)
    wl = Worklist(db)
    try:
        db.provision("gw-1", tenant="t1", patient="p-1")
        db.provision("gw-2", tenant="t2", patient="p-2")
        now = datetime.now(UTC)
        db.commit(Changes(seen={"gw-2": now}))
        assert wl.check_kits(now + timedelta(hours=1)) == 0
        assert wl.check_kits(now + timedelta(hours=49)) == 2
        assert wl.check_kits(now + timedelta(hours=50)) == 0
        assert [(a.kind, a.patient) for a in wl.alerts("t1")] == [("silent", "p-1")]
        with db.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.alert_events)).scalar() == 2
    finally:
        db.close()


def test_kit_events_and_status_raise_alerts_once_in_the_ingest_transaction(database_url: str) -> None:
    db = Database(database_url)
    wl = Worklist(db)
    try:
        db.provision("gw-1", tenant="t1", patient="p-1")

        def event(what: str, **detail: object) -> NewEvent:
            return NewEvent(id=str(uuid.uuid4()), tenant="t1", gateway="gw-1", kind=what, at=AT,
                            detail=json.dumps(detail))

        overdue = event("measurement_overdue", kind="spo2", due="2026-11-20", days_overdue=4, cadence="weekly")
        events = [overdue, event("plan_rejected", reason="signature"), event("reading_time_uncertain", device="x"),
                  event("storage_recovered")]
        assert db.commit(Changes(events=events)).new_alerts == 3
        assert db.commit(Changes(events=[overdue])).new_alerts == 0  # the same event sent again
        status = GatewayState(gateway="gw-1", state="online", at=AT, outbox_depth=12, faults=("bluetooth_adapter",),
                              devices=json.dumps([{"id": "S1", "kind": "body_weight", "battery": 9}]),
                              outbox_oldest_at=AT - timedelta(hours=30))
        assert db.commit(Changes(states=[status])).new_alerts == 3
        assert db.commit(Changes(states=[status])).new_alerts == 0  # the next status joins nothing, bumps nothing
        alerts = {(a.kind, a.subject): a for a in wl.alerts("t1")}
        assert set(alerts) == {("overdue", "spo2"), ("plan_rejected", "plan_rejected"),
                               ("clock", "reading_time_uncertain"), ("fault", "bluetooth_adapter"),
                               ("battery", "body_weight"), ("outbox", "stuck")}
        assert all(a.patient == "p-1" and a.version == 1 and a.severity == "info" for a in alerts.values())
        assert "days_overdue=4" in alerts[("overdue", "spo2")].detail
        assert "oldest for 30 h" in alerts[("outbox", "stuck")].detail
    finally:
        db.close()


def test_the_stopped_measuring_list_and_the_kit_behind_an_alert(database_url: str) -> None:
    db = Database(database_url)
    wl = Worklist(db)
    try:
        for n in (1, 2, 3):
            db.provision(f"gw-p-{n}", tenant="t1", patient=f"p-{n}")
        db.provision("gw-p-9", tenant="t2", patient="p-9")
        now = datetime.now(UTC) + timedelta(days=20)
        status = GatewayState(gateway="gw-p-1", state="online", at=AT, faults=(),
                              devices=json.dumps([{"id": "S1", "kind": "spo2", "battery": 55}]))
        db.commit(Changes(readings=[red("p-1"), red("p-2", at=now - timedelta(days=2))], states=[status],
                          plans={"gw-p-1": ("hf-standard", 3)}))
        stopped = wl.stopped("t1", now)
        assert [(x.patient, x.last_measured) for x in stopped] == [("p-1", AT), ("p-3", None)]
        alert = next(a for a in wl.alerts("t1") if a.patient == "p-1")
        detail = wl.alert("t1", alert.id)
        assert detail is not None and detail.kit is not None
        assert (detail.kit.plan, detail.kit.plan_version, detail.kit.devices) == ("hf-standard", 3,
                                                                                 [("spo2", "S1", 55)])
    finally:
        db.close()
