"""FHIR R4 output per the PHD IG: every resource produced is validated with the fhir.resources models
(R4B, the R4 line); the read-only API and the NDJSON bulk export on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from central.fhir import device_resource, gateway_resource, observations
from central.fhir.api import create_app
from central.ingest.worker import Incoming, changes_and_acks
from central.store import Database, RegisteredGateway
from protocol import Topics
from tests.central_support import batch, reading
from tests.support import ROOT


def codes(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"].rsplit("/", 1)[-1].rsplit(":", 1)[-1], c["code"]) for c in resource["code"]["coding"]}


def test_blood_pressure_is_one_compound_observation_and_a_pulse_observation() -> None:
    r = reading("blood_pressure", zone="yellow", values={"systolic": "152", "diastolic": "91", "mean": "111",
                                                          "pulse": "77"})
    bp, pulse = (o.resource for o in observations(r, tenant="t1", gateway="gw-1"))
    for resource in (bp, pulse):
        Observation.model_validate(resource)
    assert codes(bp) == {("10101", "150020"), ("loinc.org", "85354-9")}
    assert [(c["code"]["coding"][1]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
            for c in bp["component"]] == [
        ("8480-6", 152, "mm[Hg]"), ("8462-4", 91, "mm[Hg]"), ("8478-0", 111, "mm[Hg]")]
    assert "valueQuantity" not in bp
    assert codes(pulse) == {("10101", "149546"), ("loinc.org", "8867-4")}
    assert pulse["valueQuantity"] == {"value": 77, "unit": "/min", "system": "http://unitsofmeasure.org",
                                      "code": "/min"}
    assert bp["interpretation"][0]["coding"][0]["code"] == "yellow"
    assert bp["subject"]["reference"] == "Patient/p-1"
    assert bp["device"] == {"reference": "Device/phd-F05E1A000001"}
    assert bp["extension"][0] == {"url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                                  "valueReference": {"reference": "Device/phg-gw-1"}}
    assert {c["coding"][0]["code"] for c in bp["category"]} == {"vital-signs", "phd"}
    assert bp["effectiveDateTime"] == "2026-11-24T08:30:00.000Z"
    # The IG's deduplication identifier: device-patient-type-timestamp, the device's own time.
    assert bp["identifier"][0] == {
        "system": "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdBaseObservation",
        "value": "F05E1A000001-p-1-urn:dho:fhir:tenant:t1:patient-150020-20261124093000.00",
    }
    assert pulse["identifier"][0]["value"].endswith("-149546-20261124093000.00")
    assert bp["id"] == str(r.id) and pulse["id"] != bp["id"]


@pytest.mark.parametrize(("kind", "expected"), [
    ("spo2", [("150456", "2708-6", 94, "%"), ("149530", "8867-4", 72, "/min")]),
    ("body_weight", [("188736", "29463-7", 81.35, "kg")]),
    ("body_temperature", [("150364", "8310-5", 37.4, "Cel")]),
    ("glucose", [("160184", None, 6.2, "mmol/L")]),
])
def test_every_kind_maps_to_the_igs_codes_in_ucum(
    kind: str, expected: list[tuple[str, str | None, float, str]]
) -> None:
    found = [o.resource for o in observations(reading(kind), tenant="t1", gateway="gw-1")]
    for resource in found:
        Observation.model_validate(resource)
    assert [(r["code"]["coding"][0]["code"], r["code"]["coding"][1]["code"] if len(r["code"]["coding"]) > 1 else None,
             r["valueQuantity"]["value"], r["valueQuantity"]["code"]) for r in found] == expected
    vital = {c["coding"][0]["code"] for c in found[0]["category"]}
    assert ("vital-signs" in vital) == (kind != "glucose")


def test_a_value_the_device_sent_as_nan_is_absent_with_the_reason() -> None:
    r = reading("blood_pressure", values={"systolic": "130", "diastolic": "85", "pulse": "70"},
                absent={"mean": "NaN (not a number) from the device"})
    (bp, _) = (o.resource for o in observations(r, tenant="t1", gateway="gw-1"))
    Observation.model_validate(bp)
    mean = bp["component"][2]
    assert "valueQuantity" not in mean and mean["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"


def test_devices_are_phd_and_phg_resources() -> None:
    phd = device_resource(reading().device, "blood_pressure")
    Device.model_validate(phd)
    assert phd["identifier"][0]["value"] == "F0-5E-1A-00-00-01"
    assert phd["identifier"][0]["system"] == "http://hl7.org/fhir/sid/eui-48/bluetooth"
    assert phd["specialization"][0]["systemType"]["coding"][0]["code"] == "528391"
    assert phd["version"][0]["value"] == "1.2"
    phg = gateway_resource("gw-1", "0.3.0")
    Device.model_validate(phg)
    assert phg["type"]["coding"][0]["code"] == "531981"


@pytest.fixture
def filled(database_url: str) -> Database:
    """A database with two patients' readings, ingested through the worker's own planning step."""
    database = Database(database_url)
    registry = {"gw-1": RegisteredGateway("gw-1", "t1", "p-1"), "gw-2": RegisteredGateway("gw-2", "t1", "p-2")}
    day = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    messages = [
        Incoming(Topics("t1", "gw-1").readings,
                 batch("gw-1", [reading(kind, patient="p-1", at=day + timedelta(days=i))
                                for i, kind in enumerate(["spo2", "blood_pressure", "body_weight"])]), 1, 1),
        Incoming(Topics("t1", "gw-2").readings, batch("gw-2", [reading("glucose", patient="p-2", at=day,
                                                                       device="GL-SERIAL-7")]), 2, 1),
    ]
    changes, _ = changes_and_acks(messages, registry, now=day + timedelta(days=3))
    database.commit(changes)
    return database


def test_observation_search_returns_a_searchset_bundle_filtered_by_patient_and_date(filled: Database) -> None:
    api = TestClient(create_app(filled))
    everything = api.get("/fhir/Observation", params={"patient": "p-1"})
    assert everything.status_code == 200 and everything.headers["content-type"] == "application/fhir+json"
    bundle = everything.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 5  # spo2 + pulse, bp + pulse, weight
    assert all(e["resource"]["subject"]["reference"] == "Patient/p-1" for e in bundle["entry"])
    later = api.get("/fhir/Observation", params=[("patient", "Patient/p-1"), ("date", "ge2026-11-21")]).json()
    assert later["total"] == 3 and {e["resource"]["code"]["coding"][0]["code"] for e in later["entry"]} == {
        "150020", "149546", "188736"}
    window = api.get("/fhir/Observation", params=[("patient", "p-1"), ("date", "ge2026-11-21"),
                                                   ("date", "lt2026-11-22")]).json()
    assert window["total"] == 2
    paged = api.get("/fhir/Observation", params={"patient": "p-1", "_count": 2}).json()
    assert len(paged["entry"]) == 2 and any(link["relation"] == "next" for link in paged["link"])
    assert api.get("/fhir/Observation", params={"patient": "p-nobody"}).json()["total"] == 0
    filled.close()


def test_device_read_and_clear_errors(filled: Database) -> None:
    api = TestClient(create_app(filled))
    device = api.get("/fhir/Device/phd-F05E1A000001")
    assert device.status_code == 200
    Device.model_validate(device.json())
    assert Device.model_validate(api.get("/fhir/Device/phg-gw-2").json()).id == "phg-gw-2"
    missing = api.get("/fhir/Device/phd-nope")
    assert missing.status_code == 404
    OperationOutcome.model_validate(missing.json())
    bad = api.get("/fhir/Observation", params={"patient": "p-1", "date": "yesterday"})
    assert bad.status_code == 400 and "date=yesterday" in bad.json()["issue"][0]["diagnostics"]
    filled.close()


def test_bulk_export_writes_ndjson_every_line_a_valid_resource(filled: Database, tmp_path: Path) -> None:
    url = filled.url
    filled.close()
    run = subprocess.run([sys.executable, "-m", "central.cli", "fhir", "export", "--db", url, "--out",
                          str(tmp_path / "export")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "export" / "Observation.ndjson").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        Observation.model_validate(json.loads(line))
    devices = (tmp_path / "export" / "Device.ndjson").read_text().splitlines()
    assert {Device.model_validate(json.loads(d)).id for d in devices} == {
        "phd-F05E1A000001", "phd-GL-SERIAL-7", "phg-gw-1", "phg-gw-2"}
    assert "Observation.ndjson: 6 resource(s)" in run.stdout
