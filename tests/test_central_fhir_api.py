"""The FHIR API a hospital can trust (issue 20): tenant isolation, OAuth 2.0 / DPoP authentication with
real signed tokens, FHIR search and paging, OperationOutcomes, the CapabilityStatement."""

from __future__ import annotations

import http.server
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from central.store import Database, RegisteredGateway, schema
from tests.central_support import reading
from tests.fhir_support import BASE, DPoPKey, Issuer, client, effective, ingest, settings
from tests.support import ROOT

T1_GATEWAY = RegisteredGateway("gw-a", "t1", "p-eval-1")
T2_GATEWAY = RegisteredGateway("gw-b", "t2", "p-eval-1")  # the other municipality issued the same pseudonym
DAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def two_tenants(database_url: str) -> Iterator[Database]:
    """Two municipalities, one pseudonym: t1 has an oximeter, a cuff and a scale reading; t2 a scale."""
    database = Database(database_url)
    ingest(database, T1_GATEWAY, [reading(kind, patient="p-eval-1", at=DAY + timedelta(days=i))
                                  for i, kind in enumerate(["spo2", "blood_pressure", "body_weight"])])
    ingest(database, T2_GATEWAY, [reading("body_weight", patient="p-eval-1", at=DAY, device="B0:5E:1A:00:00:02",
                                          values={"weight": "99.1"})])
    yield database
    database.close()


def outcome_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    body: dict[str, Any] = response.json()
    OperationOutcome.model_validate(body)
    return body


# -- A: tenants -------------------------------------------------------------------------------------


def test_a_tenant_sees_only_its_own_patient_even_under_the_same_pseudonym(two_tenants: Database) -> None:
    issuer = Issuer()
    t1 = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    t2 = client(two_tenants, settings(issuer), token=issuer.token("t2"))
    mine = t1.get("/fhir/Observation", params={"patient": "p-eval-1"}).json()
    Bundle.model_validate(mine)
    assert mine["total"] == 5  # spo2 + pulse, bp + pulse, weight: none of t2's
    assert {e["resource"]["subject"]["reference"] for e in mine["entry"]} == {"Patient/t1.p-eval-1"}
    assert {e["resource"]["subject"]["identifier"]["system"] for e in mine["entry"]} == {
        "urn:dho:fhir:tenant:t1:patient"}
    theirs = t2.get("/fhir/Observation", params={"patient": "Patient/t2.p-eval-1"}).json()
    assert theirs["total"] == 1 and theirs["entry"][0]["resource"]["valueQuantity"]["value"] == 99.1
    # t1 naming t2's patient, or reading t2's Observation or Device by id: nothing there for t1.
    assert t1.get("/fhir/Observation", params={"subject": "Patient/t2.p-eval-1"}).json()["total"] == 0
    by_identifier = {"patient:identifier": "urn:dho:fhir:tenant:t1:patient|p-eval-1"}
    assert t1.get("/fhir/Observation", params=by_identifier).json()["total"] == 5
    theirs_by_identifier = {"subject:identifier": "urn:dho:fhir:tenant:t2:patient|p-eval-1"}
    assert t1.get("/fhir/Observation", params=theirs_by_identifier).json()["total"] == 0
    other = theirs["entry"][0]["resource"]["id"]
    outcome_of(t1.get(f"/fhir/Observation/{other}"), 404)
    outcome_of(t1.get("/fhir/Device/phd-t2.B05E1A000002"), 404)
    assert t2.get(f"/fhir/Observation/{other}").status_code == 200
    assert Device.model_validate(t2.get("/fhir/Device/phd-t2.B05E1A000002").json()).id == "phd-t2.B05E1A000002"


def test_a_kit_moved_to_another_tenant_is_that_tenants_device_too(database_url: str) -> None:
    """The same cuff and gateway, first in t1, then provisioned to t2: each tenant reads the Devices its
    own Observations point at (one row per tenant; was one row, kept under the first tenant)."""
    database = Database(database_url)
    ingest(database, RegisteredGateway("gw-kit", "t1", "p-a"), [reading("blood_pressure", patient="p-a")])
    ingest(database, RegisteredGateway("gw-kit", "t2", "p-b"), [reading("blood_pressure", patient="p-b",
                                                                        at=DAY + timedelta(days=9))])
    issuer = Issuer()
    for tenant, patient in (("t1", "p-a"), ("t2", "p-b")):
        api = client(database, settings(issuer), token=issuer.token(tenant))
        (entry, _) = api.get("/fhir/Observation", params={"patient": patient}).json()["entry"]
        observation = entry["resource"]
        gateway = observation["extension"][0]["valueReference"]["reference"]
        for reference in (observation["device"]["reference"], gateway):
            assert reference.startswith("Device/ph") and f"-{tenant}." in reference
            assert api.get(f"/fhir/{reference}").status_code == 200, reference
    database.close()


# -- B: authentication ----------------------------------------------------------------------------


def test_no_or_bad_tokens_are_401_and_missing_scopes_403(two_tenants: Database) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer))
    search = {"patient": "p-eval-1"}
    none = outcome_of(api.get("/fhir/Observation", params=search), 401)
    assert "access token" in none["issue"][0]["diagnostics"]
    assert api.get("/fhir/Observation", params=search).headers["www-authenticate"].startswith("Bearer")
    for bad in (issuer.token(lifetime_s=-120),  # expired (beyond the 30 s leeway)
                issuer.token(audience="https://other.example.no/fhir"),
                issuer.token(issuer="https://evil.example.no"),
                Issuer(kid="test-key-1").token()):  # signed by a key the issuer does not publish
        outcome_of(api.get("/fhir/Observation", params=search, headers={"Authorization": f"Bearer {bad}"}), 401)
    weak = issuer.token(scope="system/Device.read")
    forbidden = outcome_of(api.get("/fhir/Observation", params=search,
                                   headers={"Authorization": f"Bearer {weak}"}), 403)
    assert forbidden["issue"][0]["code"] == "forbidden"
    no_tenant = issuer.token(tenant=None)
    outcome_of(api.get("/fhir/Observation", params=search, headers={"Authorization": f"Bearer {no_tenant}"}), 403)
    # SMART v1 and v2 spellings both work.
    for scope in ("system/Observation.read", "system/*.rs", "system/Observation.s"):
        good = issuer.token(scope=scope)
        assert api.get("/fhir/Observation", params=search, headers={"Authorization": f"Bearer {good}"}) \
            .status_code == 200


def test_a_helseid_style_organisation_number_maps_to_a_tenant(two_tenants: Database) -> None:
    issuer = Issuer()
    auth = settings(issuer, tenant_claim="helseid://claims/client/claims/orgnr_parent",
                    tenant_map={"974633574": "t2"})
    claim = "helseid://claims/client/claims/orgnr_parent"
    api = client(two_tenants, auth, token=issuer.token("974633574", claim=claim))
    assert api.get("/fhir/Observation", params={"patient": "p-eval-1"}).json()["total"] == 1  # t2's
    unmapped = issuer.token("999999999", claim=claim)
    outcome_of(api.get("/fhir/Observation", params={"patient": "p-eval-1"},
                       headers={"Authorization": f"Bearer {unmapped}"}), 403)


def test_dpop_bound_tokens_need_a_proof_of_this_request_with_that_key(two_tenants: Database) -> None:
    issuer = Issuer()
    key = DPoPKey()
    api = client(two_tenants, settings(issuer))
    token = issuer.token("t1", jkt=key.jkt)
    url = f"{BASE}/Observation"

    def get(headers: dict[str, str]) -> Any:
        return api.get("/fhir/Observation", params={"patient": "p-eval-1"}, headers=headers)

    proof = key.proof("GET", url, token)
    assert get({"Authorization": f"DPoP {token}", "DPoP": proof}).json()["total"] == 5
    replay = outcome_of(get({"Authorization": f"DPoP {token}", "DPoP": proof}), 401)
    assert "replay" in replay["issue"][0]["diagnostics"]
    assert get({"Authorization": f"DPoP {token}", "DPoP": proof}).headers["www-authenticate"].startswith("DPoP")
    outcome_of(get({"Authorization": f"Bearer {token}"}), 401)  # a bound token used as a plain Bearer
    outcome_of(get({"Authorization": f"DPoP {token}"}), 401)  # no proof
    for wrong in (key.proof("POST", url, token), key.proof("GET", f"{BASE}/Device/x", token),
                  key.proof("GET", "https://evil.example.no/fhir/Observation", token),
                  key.proof("GET", url, issuer.token("t1", jkt=key.jkt)),  # ath of another token
                  key.proof("GET", url, token, iat=int(datetime.now(UTC).timestamp()) - 3600),
                  DPoPKey().proof("GET", url, token)):  # signed by another key than cnf.jkt
        outcome_of(get({"Authorization": f"DPoP {token}", "DPoP": wrong}), 401)
    # The htu is the configured public URL, whatever Host the request came with.
    fresh = key.proof("GET", url, token)
    assert get({"Authorization": f"DPoP {token}", "DPoP": fresh, "Host": "internal:8090"}).status_code == 200
    # A server that requires DPoP refuses plain Bearer tokens.
    strict = client(two_tenants, settings(issuer, require_dpop=True), token=issuer.token("t1"))
    outcome_of(strict.get("/fhir/Observation", params={"patient": "p-eval-1"}), 401)


class _JwksServer(http.server.BaseHTTPRequestHandler):
    body = b""
    fetches = 0

    def do_GET(self) -> None:
        type(self).fetches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_issuers_jwks_is_fetched_over_http_and_cached(two_tenants: Database) -> None:
    issuer = Issuer()
    _JwksServer.body = json.dumps(issuer.jwks()).encode()
    _JwksServer.fetches = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JwksServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        auth = settings(issuer, jwks=None, jwks_url=f"http://127.0.0.1:{server.server_port}/jwks")
        api = client(two_tenants, auth, token=issuer.token("t1"))
        for _ in range(3):
            assert api.get("/fhir/Observation", params={"patient": "p-eval-1"}).json()["total"] == 5
        assert _JwksServer.fetches == 1
    finally:
        server.shutdown()


def test_an_unreachable_issuer_is_a_503_not_a_bad_token(two_tenants: Database) -> None:
    from gateway.demo import free_port

    issuer = Issuer()
    auth = settings(issuer, jwks=None, jwks_url=f"http://127.0.0.1:{free_port()}/jwks")  # nothing listens
    answer = client(two_tenants, auth, token=issuer.token("t1")).get("/fhir/Observation", params={"patient": "x"})
    assert outcome_of(answer, 503)["issue"][0]["code"] == "transient"


def test_serve_refuses_a_non_loopback_address_without_a_configured_issuer(tmp_path: Any) -> None:
    run = subprocess.run([sys.executable, "-m", "central.cli", "fhir", "serve", "--host", "0.0.0.0",
                          "--db", str(tmp_path / "c.sqlite3"), "--key-dir", str(tmp_path / "keys")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 2
    assert "not a loopback address" in run.stderr and "--issuer" in run.stderr
    no_base = subprocess.run([sys.executable, "-m", "central.cli", "fhir", "serve", "--host", "0.0.0.0", "--db",
                              str(tmp_path / "c.sqlite3"), "--issuer", "https://helseid.example.no", "--jwks-url",
                              "https://helseid.example.no/jwks"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert no_base.returncode == 2 and "--base-url" in no_base.stderr


def test_the_local_issuer_token_command_makes_a_token_the_local_server_accepts(two_tenants: Database,
                                                                               tmp_path: Any) -> None:
    from central.fhir.auth import AuthSettings
    from central.fhir.issuer import LOCAL_ISSUER, LocalIssuer

    run = subprocess.run([sys.executable, "-m", "central.cli", "fhir", "token", "--tenant", "t2",
                          "--audience", BASE, "--key-dir", str(tmp_path / "keys")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    auth = AuthSettings(issuer=LOCAL_ISSUER, audience=BASE, jwks=LocalIssuer(tmp_path / "keys").jwks())
    api = client(two_tenants, auth, token=run.stdout.strip())
    assert api.get("/fhir/Observation", params={"patient": "p-eval-1"}).json()["total"] == 1
    assert (tmp_path / "keys" / "issuer.key").stat().st_mode & 0o077 == 0


def test_the_access_log_names_no_pseudonym(two_tenants: Database, caplog: pytest.LogCaptureFixture) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    with caplog.at_level(logging.INFO):
        api.get("/fhir/Observation", params={"patient": "p-eval-1", "code": "150456"})
        api.get("/fhir/Observation", params={"patient": "Patient/t1.p-eval-1"})
    # Everything the server logs (the test's own HTTP client, httpx, logs its URLs: not the server's).
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith("httpx")]
    assert any("/fhir/Observation 200" in line and "tenant=t1" in line for line in lines)
    assert not any("p-eval-1" in line for line in lines)


# -- C: search ------------------------------------------------------------------------------------


def test_code_sort_count_identifier_and_last_updated(two_tenants: Database) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))

    def search(*params: tuple[str, str]) -> dict[str, Any]:
        response = api.get("/fhir/Observation", params=[("patient", "p-eval-1"), *params])
        assert response.status_code == 200, response.text
        bundle: dict[str, Any] = response.json()
        Bundle.model_validate(bundle)
        return bundle

    spo2 = search(("code", "150456"))
    assert spo2["total"] == 1 and spo2["entry"][0]["resource"]["code"]["coding"][0]["code"] == "150456"
    assert search(("code", "urn:iso:std:iso:11073:10101|150456"))["total"] == 1
    assert search(("code", "http://loinc.org|8867-4"))["total"] == 2  # both pulses
    assert search(("code", "http://loinc.org|150456"))["total"] == 0  # an MDC code is no LOINC code
    assert search(("code", "150456,188736"))["total"] == 2
    newest_first = search(("_sort", "-date"))
    dates = [effective(e) for e in newest_first["entry"]]
    assert dates == sorted(dates, reverse=True)
    only_total = search(("_count", "0"))
    assert only_total["total"] == 5 and "entry" not in only_total
    assert [link["relation"] for link in only_total["link"]] == ["self"]
    ident = spo2["entry"][0]["resource"]["identifier"][0]
    assert search(("identifier", f"{ident['system']}|{ident['value']}"))["total"] == 1
    assert search(("identifier", "nothing-like-it"))["total"] == 0
    stored = spo2["entry"][0]["resource"]["meta"]["lastUpdated"]
    assert search(("_lastUpdated", f"ge{stored[:19]}Z"))["total"] == 5
    assert search(("_lastUpdated", "lt2020-01-01"))["total"] == 0


def test_a_date_without_a_zone_is_an_oslo_day(database_url: str) -> None:
    database = Database(database_url)
    late_evening = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 00:30 on 21 November in Oslo
    ingest(database, T1_GATEWAY, [reading("body_weight", patient="p-eval-1", at=late_evening)])
    issuer = Issuer()
    api = client(database, settings(issuer), token=issuer.token("t1"))
    assert api.get("/fhir/Observation", params={"patient": "p-eval-1", "date": "2026-11-21"}).json()["total"] == 1
    assert api.get("/fhir/Observation", params={"patient": "p-eval-1", "date": "2026-11-20"}).json()["total"] == 0
    assert api.get("/fhir/Observation", params={"patient": "p-eval-1", "date": "ge2026-11-21T00:00"}) \
        .json()["total"] == 1
    assert api.get("/fhir/Observation", params={"patient": "p-eval-1", "date": "ge2026-11-21T00:00Z"}) \
        .json()["total"] == 0
    database.close()


def test_keyset_paging_is_stable_when_a_late_reading_arrives(database_url: str) -> None:
    database = Database(database_url)
    ingest(database, T1_GATEWAY, [reading("body_weight", patient="p-eval-1", at=DAY + timedelta(hours=i))
                                  for i in range(7)])
    issuer = Issuer()
    api = client(database, settings(issuer), token=issuer.token("t1"))
    first = api.get("/fhir/Observation", params={"patient": "p-eval-1", "_count": "3"}).json()
    seen = [e["resource"]["id"] for e in first["entry"]]
    # A reading taken before everything on the first page arrives while the client pages.
    ingest(database, T1_GATEWAY, [reading("body_weight", patient="p-eval-1", at=DAY - timedelta(days=1))])
    link = next(link["url"] for link in first["link"] if link["relation"] == "next")
    while link:
        assert link.startswith(BASE + "/Observation?") and "_cursor=" in link
        page = api.get(link.removeprefix(BASE.removesuffix("/fhir"))).json()
        assert page["link"][0]["url"] == link  # self: this page
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        link = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == 7  # nothing twice, nothing skipped (the late one is before the cursor)
    outcome_of(api.get("/fhir/Observation", params={"patient": "p-eval-1", "_cursor": "garbage"}), 400)
    database.close()


def test_unsupported_parameters_are_left_out_or_refused_under_strict_handling(two_tenants: Database) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    params = {"patient": "p-eval-1", "_elements": "id", "_offset": str(10**20), "code:text": "SpO2"}
    lenient = api.get("/fhir/Observation", params=params)
    assert lenient.status_code == 200
    self_link = lenient.json()["link"][0]["url"]
    assert self_link == f"{BASE}/Observation?patient=p-eval-1"
    strict = outcome_of(api.get("/fhir/Observation", params=params, headers={"Prefer": "handling=strict"}), 400)
    assert strict["issue"][0]["code"] == "not-supported"
    for bad in ({"date": "yesterday"}, {"_count": "-1"}, {"_sort": "code"}, {"date": "ap2026-11-20"}):
        outcome_of(api.get("/fhir/Observation", params={"patient": "p-eval-1", **bad}), 400)


def test_links_come_from_the_configured_base_url_never_the_host_header(two_tenants: Database) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    bundle = api.get("/fhir/Observation", params={"patient": "p-eval-1", "_count": "2"},
                     headers={"Host": "evil.example.org"}).json()
    urls = [link["url"] for link in bundle["link"]] + [e["fullUrl"] for e in bundle["entry"]]
    assert all(u.startswith(BASE + "/") for u in urls) and "evil" not in json.dumps(bundle)
    # Every fullUrl reads back (was a 404 for all of them).
    for entry in bundle["entry"]:
        read = api.get(entry["fullUrl"].removeprefix(BASE.removesuffix("/fhir")))
        assert read.status_code == 200
        Observation.model_validate(read.json())
        assert read.json()["id"] == entry["resource"]["id"]


def test_every_error_is_an_operation_outcome(two_tenants: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    outcome_of(api.get("/fhir/Patient/t1.p-eval-1"), 404)
    outcome_of(api.get(f"/fhir/Observation/{uuid.uuid4()}"), 404)
    outcome_of(api.post("/fhir/Observation", json={}), 405)

    def broken(*_args: Any) -> Any:
        raise RuntimeError("SELECT ... WHERE patient = 'p-eval-1'")

    monkeypatch.setattr("central.fhir.api.search_observations", broken)
    crashed = outcome_of(api.get("/fhir/Observation", params={"patient": "p-eval-1"}), 500)
    assert "p-eval-1" not in json.dumps(crashed)
    # Answered inside the app: nothing reaches the server (uvicorn would log the exception's text).
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"), raise_server_exceptions=True)
    outcome_of(api.get("/fhir/Observation", params={"patient": "p-eval-1"}), 500)


def test_metadata_is_a_capability_statement_listing_what_works(two_tenants: Database) -> None:
    api = client(two_tenants, settings(Issuer()))
    response = api.get("/fhir/metadata")  # no token needed
    assert response.status_code == 200
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    observation, device = statement["rest"][0]["resource"]
    assert {p["name"] for p in observation["searchParam"]} == {
        "patient", "subject", "code", "date", "identifier", "_lastUpdated"}
    assert {i["code"] for i in observation["interaction"]} == {"read", "search-type"}
    assert [i["code"] for i in device["interaction"]] == ["read"]
    assert statement["implementation"]["url"] == BASE


# -- E: Bulk Data $export -------------------------------------------------------------------------


def _finished(api: Any, status_url: str) -> dict[str, Any]:
    path = status_url.removeprefix(BASE.removesuffix("/fhir"))
    for _ in range(200):
        response = api.get(path)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 202 and "x-progress" in response.headers
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def test_bulk_export_is_asynchronous_tenant_scoped_and_incremental(two_tenants: Database) -> None:
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    outcome_of(api.get("/fhir/$export"), 400)  # without Prefer: respond-async
    kicked = api.get("/fhir/$export", headers={"Prefer": "respond-async"})
    assert kicked.status_code == 202
    status_url = kicked.headers["content-location"]
    assert status_url.startswith(f"{BASE}/$export-status/")
    done = _finished(api, status_url)
    assert done["requiresAccessToken"] is True and done["request"] == f"{BASE}/$export"
    files = {o["type"]: o for o in done["output"]}
    assert {t: o["count"] for t, o in files.items()} == {"Observation": 5, "Device": 2}  # t1's cuff and its gateway
    lines = api.get(files["Observation"]["url"].removeprefix(BASE.removesuffix("/fhir"))).text.splitlines()
    assert len(lines) == 5
    for line in lines:
        resource = Observation.model_validate_json(line)
        assert resource.subject.reference == "Patient/t1.p-eval-1"
    # Another tenant neither sees the job nor fetches its files.
    t2 = client(two_tenants, settings(issuer), token=issuer.token("t2"))
    outcome_of(t2.get(status_url.removeprefix(BASE.removesuffix("/fhir"))), 404)
    outcome_of(t2.get(files["Observation"]["url"].removeprefix(BASE.removesuffix("/fhir"))), 404)
    # Incremental: what was stored before yesterday is left out of an export _since yesterday.
    with two_tenants.engine.begin() as conn:
        conn.execute(sa.update(schema.readings).values(stored_at=datetime(2026, 11, 1, tzinfo=UTC)))
    ingest(two_tenants, T1_GATEWAY, [reading("body_temperature", patient="p-eval-1", at=DAY + timedelta(days=10))])
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    again = api.get("/fhir/$export", params={"_since": since, "_type": "Observation"},
                    headers={"Prefer": "respond-async"})
    incremental = _finished(api, again.headers["content-location"])
    assert [(o["type"], o["count"]) for o in incremental["output"]] == [("Observation", 1)]
    since_future = api.get("/fhir/$export", params={"_since": "2099-01-01T00:00:00Z"},
                           headers={"Prefer": "respond-async"})
    assert [o["count"] for o in _finished(api, since_future.headers["content-location"])["output"]] == [0, 0]
    outcome_of(api.get("/fhir/$export", params={"_type": "Patient"}, headers={"Prefer": "respond-async"}), 400)
    weak = issuer.token("t1", scope="system/Device.r")
    outcome_of(api.get("/fhir/$export", params={"_type": "Observation"},
                       headers={"Prefer": "respond-async", "Authorization": f"Bearer {weak}"}), 403)
    assert api.delete(status_url.removeprefix(BASE.removesuffix("/fhir"))).status_code == 202
    outcome_of(api.get(status_url.removeprefix(BASE.removesuffix("/fhir"))), 404)


def test_the_served_api_logs_no_query_string(tmp_path: Any) -> None:
    """`fhir serve` end to end (uvicorn, the local issuer): uvicorn's own access log, which prints every
    query string, is off; ours names the route."""
    import httpx

    from gateway.demo import free_port

    port = free_port()
    keys = str(tmp_path / "keys")
    server = subprocess.Popen([sys.executable, "-m", "central.cli", "fhir", "serve", "--port", str(port), "--db",
                               str(tmp_path / "c.sqlite3"), "--key-dir", keys], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        token = subprocess.run([sys.executable, "-m", "central.cli", "fhir", "token", "--tenant", "t1", "--audience",
                                f"http://127.0.0.1:{port}/fhir", "--key-dir", keys], cwd=ROOT, capture_output=True,
                               text=True, timeout=60, check=True).stdout.strip()
        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/fhir/Observation?patient=p-secret-42",
                                   headers={"Authorization": f"Bearer {token}"})
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["total"] == 0
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "GET /fhir/Observation 200" in output
    assert "p-secret-42" not in output


def test_processes_making_the_local_issuer_key_at_once_agree_on_one(tmp_path: Any) -> None:
    """serve and token started together both make the key on first use: one key, both read it whole."""
    keys = str(tmp_path / "keys")
    runs = [subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; "
                              "from central.fhir.issuer import LocalIssuer; print(LocalIssuer(Path(sys.argv[1])).kid)",
                              keys], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(6)]
    results = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1


@pytest.mark.parametrize("order", ["date", "-date"])
def test_paging_one_by_one_through_equal_times(two_tenants: Database, order: str) -> None:
    """An oximeter reading is two Observations at the same instant: the cursor's id breaks the tie."""
    issuer = Issuer()
    api = client(two_tenants, settings(issuer), token=issuer.token("t1"))
    link: str | None = f"/fhir/Observation?patient=p-eval-1&_count=1&_sort={order}"
    seen: list[str] = []
    while link:
        page = api.get(link).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        link = next((x["url"].removeprefix(BASE.removesuffix("/fhir")) for x in page["link"]
                     if x["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == 5
