"""A questionnaire carries the id its form was rendered with (issue 17.3): the same post sent again (a
second tap, a reload, a retry after an error page) is answered like the first and stored once, also
after a restart; the same form sent with changed answers is new answers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service import Gateway
from hardware_sims.home import SimulatedHome
from tests.test_web_http import client_for, csrf_of, settings


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(settings(tmp_path), SimulatedHome())
    yield gw
    gw.outbox.close()



def answer_id_of(html: str) -> str:
    found = re.search(r'name="answer_id" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_the_form_is_rendered_with_a_new_id_each_time(gateway: Gateway) -> None:
    client = client_for(gateway)
    assert answer_id_of(client.get("/").text) != answer_id_of(client.get("/").text)


def test_the_same_form_posted_twice_is_stored_once(gateway: Gateway) -> None:
    client = client_for(gateway)
    page = client.get("/").text
    form = {"cough": "worse", "csrf": csrf_of(page), "answer_id": answer_id_of(page)}
    heard: list[str] = []
    gateway.pipeline.questionnaires.subscribe(lambda record_id, _answers, _assessment: heard.append(record_id))
    for _ in range(2):
        r = client.post("/questionnaire", data=form)
        assert r.status_code == 303 and r.headers["location"] == "/#cards"
    assert gateway.outbox.depth() == 1 and gateway.pipeline.counts["questionnaires"] == 1 and len(heard) == 1
    # Changed answers on the same form (back, changed, sent): new answers, stored.
    assert client.post("/questionnaire", data={**form, "cough": "much_worse"}).status_code == 303
    assert gateway.outbox.depth() == 2 and len(heard) == 2


def test_the_api_answers_a_resend_like_the_first_post(gateway: Gateway) -> None:
    client = client_for(gateway)
    headers = {"X-CSRF-Token": csrf_of(client.get("/").text)}
    body = {"answers": {"breathlessness": "much_worse"}, "id": "0b6f3c1e9a7d4f52b8e1c2d3a4f5e6d7"}
    first = client.post("/api/questionnaire", json=body, headers=headers)
    again = client.post("/api/questionnaire", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["zone"] == "red"
    assert gateway.outbox.depth() == 1
    assert client.post("/api/questionnaire", json={**body, "id": "no!"}, headers=headers).status_code == 400
    # Without an id (an older page or client) each post is stored, as before.
    for _ in range(2):
        assert client.post("/api/questionnaire", json={"answers": {"cough": "worse"}}, headers=headers).is_success
    assert gateway.outbox.depth() == 3


def test_a_resend_after_a_restart_is_not_stored_again(tmp_path: Path) -> None:
    body = {"answers": {"cough": "worse"}, "id": "5f0c9e2b7a1d4c38a6b2e9f1d0c3b4a5"}
    ids = []
    for _ in range(2):  # the gateway restarts between the two posts: only the outbox remembers
        gw = Gateway(settings(tmp_path), SimulatedHome())
        client = client_for(gw)
        r = client.post("/api/questionnaire", json=body, headers={"X-CSRF-Token": csrf_of(client.get("/").text)})
        assert r.status_code == 200
        ids.append(r.json()["id"])
        depth = gw.outbox.depth()
        gw.outbox.close()
    assert depth == 1 and ids[0] == ids[1]


RED_FORM = {"breathlessness": "much_worse", "sputum_colour": "yellow_green", "sputum_amount": "more"}


def test_a_red_questionnaire_survives_a_restart_on_the_page_and_in_the_schedule(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18.6: a red questionnaire disappeared from the page after a restart and did not count in the
    schedule. Its zone and time are kept with the history now (not its answers)."""
    gw = Gateway(settings(tmp_path), SimulatedHome())
    client = client_for(gw)
    with caplog.at_level(logging.INFO, logger="gateway.readings.pipeline"):
        r = client.post("/api/questionnaire", json={"answers": RED_FORM},
                        headers={"X-CSRF-Token": csrf_of(client.get("/").text)})
    assert r.status_code == 200 and r.json()["zone"] == "red"
    # The journal on the card is read without any key: no zone at INFO (issue 19.10).
    assert not [rec for rec in caplog.records if re.search(r"\bred\b", rec.getMessage())]
    gw.outbox.close()

    restarted = Gateway(settings(tmp_path), SimulatedHome())
    try:
        assert [(p.kind.value, p.zone.value) for p in restarted.pipeline.history] == [("questionnaire", "red")]
        page = client_for(restarted).get("/api/patient").json()
        card = next(c for c in page["cards"] if c["kind"] == "questionnaire")
        assert card["zone"] == "red" and page["emergency"] and "113" in page["emergency"]
        assert card["values"] == "Svarene er lagret."  # never "as usual" beside a red
        assert card["advice"] and "rødt felt" in card["advice"][0]
    finally:
        restarted.outbox.close()


def test_what_a_partly_answered_form_was_judged_on_travels_with_it(gateway: Gateway) -> None:
    client = client_for(gateway)
    r = client.post("/api/questionnaire", json={"answers": {"cough": "usual"}},
                    headers={"X-CSRF-Token": csrf_of(client.get("/").text)})
    assert r.status_code == 200
    sent = json.loads(gateway.outbox.pending(0, 10)[0].payload)
    assert sent["assessment"]["notes"] and "1 of" in sent["assessment"]["notes"][0], sent["assessment"]


def test_a_plan_judging_kinds_no_paired_device_measures_is_a_fault_in_the_status(gateway: Gateway) -> None:
    """Issue 18.3: a COPD plan on a kit with only a scale judged nothing and raised no fault."""
    faults = gateway._status_facts().faults
    assert any("spo2" in f for f in faults), faults
