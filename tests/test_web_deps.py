"""The pages' session, access and CSRF dependencies (gateway/web/deps.py): a refusal comes before the
request's own fields are looked at, and the session cookie is set whatever answered (issue 17, item 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service import Gateway, IdleDeviceSource
from tests.test_web_http import PASSWORD, client_for, csrf_of, settings


@pytest.fixture
def lan_gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(settings(tmp_path, lan=True, host="0.0.0.0"), IdleDeviceSource())
    yield gw
    gw.outbox.close()


def test_a_stranger_is_refused_before_the_request_is_validated(lan_gateway: Gateway) -> None:
    stranger = client_for(lan_gateway, client=("192.168.1.23", 40000))
    r = stranger.post("/unassigned", data={"id": "x", "answer": "maybe"})
    assert r.status_code == 401 and 'name="password"' in r.text
    r = stranger.get("/api/changes", params={"since": "not a number"})
    assert r.status_code == 401 and r.json() == {"detail": "login needed"}
    r = stranger.post("/api/unassigned/x/maybe")
    assert r.status_code == 401
    r = stranger.post("/service/scan")
    assert r.status_code == 401 and 'name="password"' in r.text
    assert stranger.get("/api/service").status_code == 401


def test_a_forged_post_is_refused_before_it_is_validated_and_a_real_one_is_then_validated(
        lan_gateway: Gateway) -> None:
    box = client_for(lan_gateway)  # the box's own screen
    token = csrf_of(box.get("/").text)
    r = box.post("/language", data={"language": "fr"})
    assert r.status_code == 403
    r = box.post("/api/unassigned/x/maybe")
    assert r.status_code == 403 and "Last siden" in r.json()["detail"]
    r = box.post("/language", data={"language": "fr", "csrf": token})
    assert r.status_code == 400 and "language" in r.json()["detail"]
    r = box.post("/api/unassigned/x/maybe", headers={"X-CSRF-Token": token})
    assert r.status_code == 400 and "answer" in r.json()["detail"]


def test_the_session_cookie_is_set_by_pages_refusals_and_errors_alike(lan_gateway: Gateway) -> None:
    for path, status in (("/", 200), ("/service", 401), ("/nope", 404), ("/api/nope", 404)):
        r = client_for(lan_gateway).get(path)
        cookie = r.headers["set-cookie"].lower()
        assert r.status_code == status and cookie.startswith("dho_session=") and "samesite=strict" in cookie, path
    r = client_for(lan_gateway, client=("192.168.1.23", 40000)).get("/api/patient")
    assert r.status_code == 401 and r.headers["set-cookie"].startswith("dho_session=")
    assert "set-cookie" not in client_for(lan_gateway).get("/static/page.css").headers  # no session asked for


def test_login_and_logout_each_give_a_new_session_cookie(lan_gateway: Gateway) -> None:
    client = client_for(lan_gateway, client=("192.168.1.23", 40000))
    token = csrf_of(client.get("/service").text)
    first = client.cookies.get("dho_session")
    assert client.get("/service").headers.get("set-cookie") is None  # a known session: no new cookie
    r = client.post("/service/login", data={"password": PASSWORD, "csrf": token})
    assert r.status_code == 303 and client.cookies.get("dho_session") not in (None, first)
    technician = client.cookies.get("dho_session")
    r = client.post("/service/logout", data={"csrf": csrf_of(client.get("/service").text)})
    assert r.status_code == 303 and client.cookies.get("dho_session") not in (None, first, technician)
    assert client.get("/api/service").status_code == 401
