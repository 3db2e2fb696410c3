"""FHIR R4 output per the PHD IG: every resource produced is validated with the fhir.resources models
(R4B, the R4 line); the read-only API and the NDJSON bulk export on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from central.fhir import device_resource, gateway_resource, observations
from central.ingest.worker import Incoming, changes_and_acks
from central.store import Database, RegisteredGateway
from protocol import Topics, WireFiredRule, WireReading
from tests.central_support import batch, reading
from tests.fhir_support import Issuer, client, ingest, settings
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
    assert bp["subject"] == {"reference": "Patient/t1.p-1",
                             "identifier": {"system": "urn:dho:fhir:tenant:t1:patient", "value": "p-1"}}
    assert bp["device"] == {"reference": "Device/phd-t1.F05E1A000001"}
    assert bp["extension"][0] == {"url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                                  "valueReference": {"reference": "Device/phg-t1.gw-1"}}
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
    ("body_weight", [("188736", "29463-7", Decimal("81.35"), "kg")]),
    ("body_temperature", [("150364", "8310-5", Decimal("37.4"), "Cel")]),
    ("glucose", [("160184", "14743-9", Decimal("6.2"), "mmol/L")]),
])
def test_every_kind_maps_to_the_igs_codes_in_ucum(
    kind: str, expected: list[tuple[str, str | None, Decimal | int, str]]
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
    phd = device_resource(reading().device, "blood_pressure", tenant="t1")
    Device.model_validate(phd)
    assert phd["identifier"][0]["value"] == "F0-5E-1A-00-00-01"
    assert phd["identifier"][0]["system"] == "http://hl7.org/fhir/sid/eui-48/bluetooth"
    assert phd["specialization"][0]["systemType"]["coding"][0]["code"] == "528391"
    assert phd["version"][0]["value"] == "1.2"
    phg = gateway_resource("gw-1", "0.3.0", tenant="t1")
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
    issuer = Issuer()
    api = client(filled, settings(issuer), token=issuer.token("t1"))
    everything = api.get("/fhir/Observation", params={"patient": "p-1"})
    assert everything.status_code == 200 and everything.headers["content-type"] == "application/fhir+json"
    bundle = everything.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 5  # spo2 + pulse, bp + pulse, weight
    assert all(e["resource"]["subject"]["reference"] == "Patient/t1.p-1" for e in bundle["entry"])
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
    issuer = Issuer()
    api = client(filled, settings(issuer), token=issuer.token("t1"))
    device = api.get("/fhir/Device/phd-t1.F05E1A000001")
    assert device.status_code == 200
    Device.model_validate(device.json())
    assert Device.model_validate(api.get("/fhir/Device/phg-t1.gw-2").json()).id == "phg-t1.gw-2"
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
        "phd-t1.F05E1A000001", "phd-t1.GL-SERIAL-7", "phg-t1.gw-1", "phg-t1.gw-2"}
    assert "Observation.ndjson: 6 resource(s)" in run.stdout


@pytest.mark.parametrize(("zone", "v3"), [("green", "N"), ("yellow", "A"), ("red", "AA"), ("unassessed", None)])
def test_the_zone_is_also_an_hl7_interpretation_code(zone: str, v3: str | None) -> None:
    (spo2, _) = (o.resource for o in observations(reading("spo2", zone=zone), tenant="t1", gateway="gw-1"))
    Observation.model_validate(spo2)
    found = {(c["system"], c["code"]) for i in spo2["interpretation"] for c in i["coding"]}
    assert ("urn:dho:fhir:zone", zone) in found
    hl7 = {code for system, code in found if system.endswith("v3-ObservationInterpretation")}
    assert hl7 == ({v3} if v3 else set())


def test_device_flags_set_the_status_and_off_scale_interpretation() -> None:
    plain = observations(reading("glucose"), tenant="t1", gateway="gw-1")[0].resource
    assert plain["status"] == "final"
    provisional = observations(reading("spo2", flags=["provisional"]), tenant="t1", gateway="gw-1")
    assert [o.resource["status"] for o in provisional] == ["preliminary", "preliminary"]
    high = observations(reading("glucose", flags=["above_measuring_range"]), tenant="t1", gateway="gw-1")[0]
    Observation.model_validate(high.resource)
    assert {c["code"] for i in high.resource["interpretation"] for c in i["coding"]} >= {">"}


def test_time_provenance_is_exported() -> None:
    r = reading("body_weight").model_copy(update={"time_source": "gateway_receive"})
    resource = observations(r, tenant="t1", gateway="gw-1")[0].resource
    Observation.model_validate(resource)
    (provenance,) = [e for e in resource["extension"] if e["url"] == "urn:dho:fhir:StructureDefinition:time-provenance"]
    assert {e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in provenance["extension"]} \
        == {"source": "gateway_receive", "deviceTime": "2026-11-24T09:30:00",
            "clockCorrection": {"value": Decimal("0.0"), "unit": "s", "system": "http://unitsofmeasure.org",
                                "code": "s"}}


def test_the_measured_precision_is_kept_from_the_wire_to_the_api(database_url: str) -> None:
    database = Database(database_url)
    gateway = RegisteredGateway("gw-1", "t1", "p-1")
    ingest(database, gateway, [reading("body_weight", values={"weight": "83.800"}),
                               reading("body_temperature", values={"temperature": "37.0"},
                                       at=datetime(2026, 11, 25, tzinfo=UTC))])
    issuer = Issuer()
    api = client(database, settings(issuer), token=issuer.token("t1"))
    text = api.get("/fhir/Observation", params={"patient": "p-1"}).text
    assert '"value": 83.800' in text and '"value": 37.0' in text
    Bundle.model_validate_json(text)
    database.close()


def test_served_json_adds_last_updated_without_touching_the_rest() -> None:
    from central.fhir.mapping import served_json

    at = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    ours = '{"resourceType": "Observation", "id": "x-1", "meta": {"profile": ["p"]}, "value": 83.80}'
    assert served_json(ours, at) == ('{"resourceType": "Observation", "id": "x-1", "meta": {"lastUpdated": '
                                     '"2026-11-24T08:30:00.000Z", "profile": ["p"]}, "value": 83.80}')
    empty_meta = '{"resourceType": "Device", "id": "d", "meta": {}}'
    assert json.loads(served_json(empty_meta, at))["meta"] == {"lastUpdated": "2026-11-24T08:30:00.000Z"}
    other = '{"id": "d", "resourceType": "Device", "version": [{"value": 1.50}]}'  # not our layout: parsed
    assert served_json(other, at) == ('{"id": "d", "resourceType": "Device", "version": [{"value": 1.50}], '
                                      '"meta": {"lastUpdated": "2026-11-24T08:30:00.000Z"}}')


def _fired(component: str, value: str, op: str, limit: str, zone: str) -> WireFiredRule:
    return WireFiredRule(rule=f"{component}-{zone}", component=component, value=Decimal(value), op=op,  # type: ignore[arg-type]
                         limit=Decimal(limit), zone=zone)  # type: ignore[arg-type]


def test_the_hl7_interpretation_says_high_or_low_from_the_rules_that_fired_on_the_observation() -> None:
    def v3(r: WireReading) -> list[str]:
        return [next(c["code"] for i in o.resource["interpretation"] for c in i["coding"]
                     if c["system"].endswith("v3-ObservationInterpretation"))
                for o in observations(r, tenant="t1", gateway="gw-1")]

    def judged(r: WireReading, zone: str, *rules: WireFiredRule) -> WireReading:
        assessment = r.assessment.model_copy(update={"zone": zone, "rules": list(rules)})
        return r.model_copy(update={"assessment": assessment})

    bp = reading("blood_pressure", values={"systolic": "185", "diastolic": "95", "mean": "125", "pulse": "70"})
    # Red from the systolic (high): the panel is critical high, its pulse Observation normal.
    assert v3(judged(bp, "red", _fired("systolic", "185", ">", "180", "red"),
                     _fired("diastolic", "95", ">=", "90", "yellow"))) == ["HH", "N"]
    spo2 = reading("spo2", values={"spo2": "91", "pulse": "72"})
    assert v3(judged(spo2, "yellow", _fired("spo2", "91", "<", "92", "yellow"))) == ["L", "N"]
    # A weight trend fired on the change (+2.4 kg), not on the weight: abnormal, no direction of the value.
    assert v3(judged(reading("body_weight"), "yellow", _fired("weight", "2.4", ">", "2", "yellow"))) == ["A"]
    low_and_high = judged(bp, "yellow", _fired("systolic", "185", ">", "160", "yellow"),
                          _fired("diastolic", "95", "<", "100", "yellow"))
    assert v3(low_and_high)[0] == "A"


def test_the_offline_export_keeps_the_measured_digits(database_url: str, tmp_path: Path) -> None:
    from central.fhir.export import export_ndjson

    database = Database(database_url)
    ingest(database, RegisteredGateway("gw-1", "t1", "p-1"), [reading("body_weight", values={"weight": "83.800"})])
    export_ndjson(database, tmp_path, tenant="t1")
    database.close()
    (line,) = (tmp_path / "Observation.ndjson").read_text().splitlines()
    assert '"value": 83.800' in line
    Observation.model_validate_json(line)


def test_the_cuffs_flags_are_a_coded_measurement_status_observation() -> None:
    r = reading("blood_pressure", flags=["irregular_pulse", "body_movement", "low_battery"])
    bp, _pulse, status = (o.resource for o in observations(r, tenant="t1", gateway="gw-1"))
    Observation.model_validate(status)
    assert codes(status) == {("10101", "8410608")}
    assert [(c["code"]["coding"][0]["code"], c["valueBoolean"]) for c in status["component"]] == [
        ("8410608.0", True), ("8410608.2", True)]
    assert status["component"][0]["code"]["coding"][0]["system"] == "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7"
    assert status["subject"] == bp["subject"] and status["device"] == bp["device"]
    assert "interpretation" not in status and "valueQuantity" not in status
    assert status["identifier"][0]["value"].endswith("-8410608-20261124093000.00")
    # Without a status flag, no status Observation.
    assert len(observations(reading("blood_pressure", flags=["low_battery"]), tenant="t1", gateway="gw-1")) == 2
