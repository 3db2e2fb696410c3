"""The worklist's pages through HTTP (no browser): login with rate limit, CSRF, the sorted list, the
actions, two nurses at once, another tenant's alert (404, audited), the audit trail, service hours,
bad input answered in one line."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.store import Changes, Database, NewReading
from central.worklist import ServiceHours, TenantHours, Worklist, create_app, hash_password
from central.worklist.server import Hardened

PASSWORD = "correct horse battery"
AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def reading(zone: str, *, patient: str = "p-1", kind: str = "blood_pressure", tenant: str = "t1",
            at: datetime = AT) -> NewReading:
    return NewReading(id=str(uuid.uuid4()), tenant=tenant, gateway=f"gw-{patient}", patient=patient, type=kind,
                      effective=at, zone=zone,
                      body='{"components": {"systolic": {"value": "182", "unit": "mm[Hg]"}}}')


@pytest.fixture
def worklist(tmp_path: Path) -> Iterator[Worklist]:
    db = Database(str(tmp_path / "central.sqlite3"))
    wl = Worklist(db)
    digest = hash_password(PASSWORD)
    for name, tenant, role in (("kari", "t1", "nurse"), ("ola", "t1", "nurse"), ("siri", "t1", "coordinator"),
                               ("eve", "t2", "nurse")):
        wl.add_user(name, tenant=tenant, role=role, password_hash=digest)
    yield wl
    db.close()


def client(wl: Worklist, **kwargs: object) -> TestClient:
    return TestClient(Hardened(create_app(wl, **kwargs)), base_url="http://127.0.0.1")  # type: ignore[arg-type]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def login(c: TestClient, name: str, password: str = PASSWORD) -> str:
    token = csrf(c.get("/login").text)
    response = c.post("/login", data={"name": name, "password": password, "csrf": token})
    assert response.status_code == 200, response.text  # followed the redirect to the list
    return csrf(response.text)


def alert_ids(html: str) -> list[str]:
    return re.findall(r'data-alert="([0-9a-f-]{36})"', html)


def test_the_list_is_red_then_yellow_then_kits_oldest_first_and_needs_a_login(worklist: Worklist) -> None:
    db = worklist.database
    db.commit(Changes(readings=[reading("yellow", patient="p-3", at=AT - timedelta(days=2)),
                                reading("red", patient="p-2", at=AT),
                                reading("red", patient="p-1", at=AT - timedelta(hours=3)),
                                reading("red", patient="p-9", tenant="t2")]))
    c = client(worklist)
    assert c.get("/", follow_redirects=False).headers["location"] == "/login"
    assert c.get("/api/changes").status_code == 401
    login(c, "kari")
    page = c.get("/").text
    rows = re.findall(r'<td>(p-\d)</td>', page)
    assert rows == ["p-1", "p-2", "p-3"]  # p-9 is tenant t2's
    assert "Arbeidsliste" in page and 'lang="nb"' in page
    assert c.get("/api/changes", params={"since": 0}).json()["mark"] > 0
    headers = c.get("/").headers
    assert "default-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert c.post("/login", content=b"x" * 20_000).status_code == 413
    assert "Sluttet å måle" in c.get("/stopped").text


def test_take_note_close_two_nurses_and_the_audit(worklist: Worklist) -> None:
    worklist.database.commit(Changes(readings=[reading("red")]))
    kari, ola = client(worklist), client(worklist)
    k_token, o_token = login(kari, "kari"), login(ola, "ola")
    (alert,) = alert_ids(kari.get("/").text)
    page = kari.get(f"/alerts/{alert}").text
    assert "systolic 182 mm[Hg]" in page
    assert ola.get(f"/alerts/{alert}").status_code == 200
    taken = kari.post(f"/alerts/{alert}", data={"action": "take", "version": "1", "csrf": k_token})
    assert taken.status_code == 200 and "kari" in taken.text
    told = ola.post(f"/alerts/{alert}", data={"action": "done", "version": "1", "csrf": o_token})
    assert told.status_code == 409 and "Noen andre endret" in told.text
    kari.post(f"/alerts/{alert}", data={"action": "note", "version": "2", "csrf": k_token,
                                        "note": "Ringte pasienten, ny måling om en time."})
    done = kari.post(f"/alerts/{alert}", data={"action": "done", "version": "3", "csrf": k_token})
    assert done.status_code == 200 and alert_ids(done.text) == []
    again = kari.post(f"/alerts/{alert}", data={"action": "done", "version": "4", "csrf": k_token})
    assert again.status_code == 400 and "Det går ikke" in again.text
    assert kari.get("/audit").status_code == 403
    siri = client(worklist)
    login(siri, "siri")
    audit = siri.get("/audit").text
    for who, what in (("kari", "taken"), ("kari", "noted"), ("kari", "done"), ("ola", "viewed"), ("kari", "login")):
        assert re.search(rf"<td>{who}</td><td>{what}</td>", audit), (who, what)
    assert "<td>ola</td><td>done</td>" not in audit


def test_another_tenants_alert_is_404_and_audited_and_forged_posts_are_refused(worklist: Worklist) -> None:
    worklist.database.commit(Changes(readings=[reading("red")]))
    (alert,) = [a.id for a in worklist.alerts("t1")]
    eve = client(worklist)
    token = login(eve, "eve")
    assert eve.get(f"/alerts/{alert}").status_code == 404
    assert eve.post(f"/alerts/{alert}", data={"action": "take", "version": "1", "csrf": token}).status_code == 404
    assert eve.get("/alerts/not-an-id").status_code == 404
    assert [(x[1], x[2], x[4]) for x in worklist.audit_trail("t2")][:3] == [
        ("eve", "refused_access", "no such alert"), ("eve", "refused_access", "another tenant's alert"),
        ("eve", "refused_access", "another tenant's alert")]
    # The tenant whose alert it is sees the attempt too.
    assert [(x[1], x[2], x[3]) for x in worklist.audit_trail("t1")][:1] == [("eve (t2)", "refused_access", alert)]
    assert worklist.alerts("t1")[0].state == "open"
    kari = client(worklist)
    login(kari, "kari")
    forged = kari.post(f"/alerts/{alert}", data={"action": "take", "version": "1", "csrf": "forged"})
    assert forged.status_code == 403
    bad = kari.post(f"/alerts/{alert}", data={"action": "delete", "version": "1", "csrf": "x"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("bad request: action")
    assert worklist.alerts("t1")[0].state == "open"


def test_wrong_passwords_are_rate_limited_per_name(worklist: Worklist) -> None:
    c = client(worklist)
    token = csrf(c.get("/login").text)
    for _ in range(5):
        assert c.post("/login", data={"name": "kari", "password": "wrong password", "csrf": token}).status_code == 401
    locked = c.post("/login", data={"name": "kari", "password": PASSWORD, "csrf": token})
    assert locked.status_code == 429
    assert c.post("/login", data={"name": "nobody", "password": PASSWORD, "csrf": token}).status_code == 401
    login(c, "ola")


def test_outside_service_hours_the_page_says_so_and_what_the_patient_was_told(worklist: Worklist) -> None:
    saturday = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    c = client(worklist, now=lambda: saturday, hours=TenantHours(ServiceHours.parse("mon-fri 09:00-15:00 Europe/Oslo")))
    login(c, "kari")
    page = c.get("/").text
    assert "Utenfor tjenestetid" in page and "113" in page
    h = ServiceHours.parse("mon-fri 09:00-15:00")
    assert h.is_open(datetime(2026, 12, 7, 9, 30, tzinfo=UTC)) and not h.is_open(saturday)
    assert h.next_opening(saturday).isoformat() == "2026-12-07T09:00:00+01:00"


def test_the_command_line_adds_users_and_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    def central(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "central.cli", *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL, check=False)

    db = str(tmp_path / "c.sqlite3")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "short").write_text("short\n")
    done = central("worklist", "user", "add", "kari", "--db", db, "--tenant", "t1", "--role", "nurse",
                   "--password-file", str(tmp_path / "pw"))
    assert done.returncode == 0 and "nurse of tenant t1" in done.stdout
    sso = central("worklist", "user", "add", "per@kommune.no", "--db", db, "--tenant", "t1", "--role", "coordinator",
                  "--sign-on-only")
    assert sso.returncode == 0, sso.stderr
    for args, words in (
        (("worklist", "user", "add", "x", "--db", db, "--tenant", "t1", "--role", "nurse"), "--password-file"),
        (("worklist", "user", "add", "x", "--db", db, "--tenant", "t1", "--role", "nurse", "--password-file",
          str(tmp_path / "short")), "at least 10"),
        (("worklist", "serve", "--db", db, "--hours", "mon-xyz 09:00-15:00"), "unknown day 'xyz'"),
    ):
        refused = central(*args)
        assert refused.returncode == 2 and words in refused.stderr and "Traceback" not in refused.stderr
    database = Database(db)
    try:
        from central.worklist import verify_password

        user = Worklist(database).user("kari")
        assert user is not None and user.role == "nurse" and verify_password(PASSWORD, user.password_hash)
    finally:
        database.close()


def test_a_flood_of_anonymous_visits_does_not_log_a_nurse_out() -> None:
    from central.worklist.security import MAX_SESSIONS, Sessions

    sessions = Sessions()
    nurse = sessions.login(sessions.new("nb"), "kari")
    for _ in range(MAX_SESSIONS + 50):
        sessions.new("nb")
    assert sessions.get(nurse.id) is nurse


def test_single_sign_on_through_a_trusted_proxy_header_only(worklist: Worklist) -> None:
    from central.worklist import ProxySignOn
    from central.worklist.security import SIGN_ON_ONLY

    worklist.add_user("per@kommune.no", tenant="t1", role="nurse", password_hash=SIGN_ON_ONLY)
    header = "X-Auth-Request-Preferred-Username"
    via_proxy = client(worklist, sign_on=ProxySignOn(header, frozenset({"testclient"})))
    page = via_proxy.get("/", headers={header: "per@kommune.no"})
    assert page.status_code == 200 and "per@kommune.no" in page.text
    assert via_proxy.get("/", headers={header: "stranger@idp"}, follow_redirects=False).status_code == 303
    # From anywhere but the proxy the header is not believed, and a sign-on-only user has no password.
    direct = client(worklist, sign_on=ProxySignOn(header, frozenset({"10.0.0.5"})))
    assert direct.get("/", headers={header: "kari"}, follow_redirects=False).headers["location"] == "/login"
    token = csrf(direct.get("/login").text)
    assert direct.post("/login", data={"name": "per@kommune.no", "password": "!", "csrf": token}).status_code == 401
    assert ("per@kommune.no", "login", "single sign-on") in [(x[1], x[2], x[4]) for x in worklist.audit_trail("t1")]
