"""The central database on SQLite and on a real PostgreSQL: migrations, idempotent inserts, the registry."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from central.store import SCHEMA_VERSION, Changes, Database, GatewayState, NewObservation, NewReading
from central.store.acl import mosquitto_acl
from central.store.migrations import current_version
from tests.support import ROOT


def new_reading(reading_id: str, identifier: str, *, patient: str = "p-1") -> NewReading:
    at = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    return NewReading(
        id=reading_id, tenant="t1", gateway="gw-1", patient=patient, type="spo2", effective=at, zone="green",
        body="{}", observations=(NewObservation(f"obs-{reading_id}", identifier, "150456", at, '{"id": 1}'),),
    )


def test_workers_starting_together_migrate_once_and_agree_on_the_version(database_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Database(database_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    database = Database(database_url)
    with database.engine.connect() as conn:
        assert current_version(conn) == SCHEMA_VERSION
        assert conn.execute(sa.text("SELECT count(*) FROM schema_version")).scalar() == 1
    database.close()


def test_a_reading_sent_again_is_not_stored_twice_and_one_measurement_is_one_observation(database_url: str) -> None:
    database = Database(database_url)
    first = database.commit(Changes(readings=[new_reading("r1", "dedup-A"), new_reading("r2", "dedup-B")]))
    again = database.commit(Changes(readings=[new_reading("r1", "dedup-A")]))
    # The same measurement under a second reading id (re-fetched from the device): kept as a reading,
    # but the FHIR deduplication identifier keeps it one Observation.
    refetched = database.commit(Changes(readings=[new_reading("r3", "dedup-A")]))
    assert (first.new_readings, first.new_observations) == (2, 2)
    assert (again.new_readings, again.duplicate_readings, again.new_observations) == (0, 1, 0)
    assert (refetched.new_readings, refetched.new_observations) == (1, 0)
    assert database.count() == 3 and database.count("observations") == 2
    assert database.duplicate_ids() == 0
    database.close()


def test_the_registry_keeps_the_latest_status_and_the_last_will(database_url: str) -> None:
    database = Database(database_url)
    database.provision("gw-1", tenant="t1", patient="p-1")
    t0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    online = GatewayState("gw-1", "online", t0 + timedelta(minutes=5), "0.3.0", 12, 4, 0, ("disk full",),
                          json.dumps([{"id": "cuff", "kind": "blood_pressure", "battery": 40}]),
                          outbox_oldest_at=t0 - timedelta(hours=30))
    older = GatewayState("gw-1", "online", t0, "0.2.0", 99)
    database.commit(Changes(states=[online], seen={"gw-1": t0 + timedelta(minutes=5)}, plans={"gw-1": ("copd", 2)}))
    database.commit(Changes(states=[older]))  # arrived late through another worker: not newer
    (record,) = database.gateways()
    assert (record.state, record.software_version, record.outbox_depth, record.faults) == (
        "online", "0.3.0", 12, ["disk full"])
    assert record.devices[0]["battery"] == 40 and (record.plan, record.plan_version) == ("copd", 2)
    assert record.outbox_oldest_at == t0 - timedelta(hours=30)  # a reading has waited 30 h: worth a call
    database.commit(Changes(states=[GatewayState("gw-1", "offline", t0 + timedelta(minutes=9))]))
    (record,) = database.gateways()
    assert record.state == "offline" and record.outbox_depth == 12  # the last report is kept
    database.close()


def test_provisioning_again_moves_a_kit_to_its_new_patient(database_url: str) -> None:
    database = Database(database_url)
    database.provision("gw-1", tenant="t1", patient="p-1")
    database.provision("gw-1", tenant="t1", patient="p-2")
    assert database.registered(["gw-1", "gw-x"])["gw-1"].patient == "p-2"
    assert database.registered(["gw-x"]) == {}
    database.close()


def test_the_generated_acl_names_each_gateways_own_tenant() -> None:
    acl = mosquitto_acl([("t1", "gw-1"), ("t2", "gw-2")])
    assert "user gw-1\ntopic write dho/v1/t1/gw-1/up/#\ntopic read dho/v1/t1/gw-1/down/#" in acl
    assert not any(line.startswith("pattern") for line in acl.splitlines()) and "dho/v1/+/gw-1" not in acl


def test_the_command_line_provisions_lists_and_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "central.sqlite3")

    def central(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "central.cli", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)

    assert central("gateways", "add", "gw-1", "--tenant", "t1", "--patient", "p-1", "--db", db).returncode == 0
    listed = central("gateways", "list", "--db", db)
    assert listed.returncode == 0 and "t1/gw-1: never_seen" in listed.stdout
    assert "user gw-1\ntopic write dho/v1/t1/gw-1/up/#" in central("gateways", "acl", "--db", db).stdout
    for args, message in [
        (("gateways", "add", "gw/1", "--tenant", "t1", "--patient", "p", "--db", db), "gateway 'gw/1': use 1-64"),
        (("gateways", "list", "--db", "postgresql://postgres@127.0.0.1:1/none"), "database: cannot open"),
        (("gateways", "remove", "gw-nobody", "--db", db), "no gateway 'gw-nobody'"),
    ]:
        run = central(*args)
        assert run.returncode == 2 and "Traceback" not in run.stderr
        assert run.stderr.startswith(f"dho-central: error: {message}"), run.stderr
