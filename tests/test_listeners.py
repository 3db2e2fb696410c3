"""One subscribe idiom (issue 17.3): `subscribe(listener)` returns the unsubscribe, and a failing listener
is logged in one line and never fails whoever told it: a questionnaire stored stays stored (no HTTP
500, so the patient does not send it again), a quarantined record is still quarantined."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.listeners import Listeners
from gateway.service import Gateway
from gateway.storage import SealedOutbox
from hardware_sims.home import SimulatedHome
from tests.test_web_http import client_for, csrf_of, settings


def test_subscribe_returns_an_unsubscribe_that_may_be_called_twice() -> None:
    news: Listeners[[int]] = Listeners("test")
    heard: list[tuple[str, int]] = []

    def note(n: int) -> None:
        heard.append(("note", n))

    first = news.subscribe(note)
    news.subscribe(note)  # the same function twice: two subscriptions, ended one by one
    news.notify(1)
    first()
    first()
    news.notify(2)
    assert heard == [("note", 1), ("note", 1), ("note", 2)]


def test_a_listener_may_unsubscribe_itself_while_being_told() -> None:
    news: Listeners[[]] = Listeners("test")
    heard: list[str] = []
    stop = news.subscribe(lambda: (heard.append("once"), stop()))
    news.subscribe(lambda: heard.append("always"))
    news.notify()
    news.notify()
    assert heard == ["once", "always", "always"]


def test_a_failing_listener_is_one_line_without_its_arguments(caplog: pytest.LogCaptureFixture) -> None:
    news: Listeners[[str]] = Listeners("test news")
    heard: list[str] = []

    def page(value: str) -> None:
        raise ValueError(f"cannot show {value}")

    news.subscribe(page)
    news.subscribe(heard.append)
    with caplog.at_level(logging.ERROR):
        news.notify("SpO2 88 %")  # returns: the caller never sees the listener's failure
    assert heard == ["SpO2 88 %"]
    (line,) = [r for r in caplog.records if r.name == "gateway.listeners"]
    assert "page" in line.getMessage() and "ValueError" in line.getMessage() and "test news" in line.getMessage()
    assert "88" not in caplog.text and line.exc_info is None


def test_a_failing_quarantine_listener_does_not_fail_the_read(tmp_path: Path) -> None:
    outbox = SealedOutbox(tmp_path / "outbox.sqlite3", b"k" * 32)
    outbox.put("r-1", b"{}")
    outbox._db.execute("UPDATE outbox SET sealed = zeroblob(40)")  # a damaged record
    told: list[int] = []

    def broken(_seq: int, _reason: str) -> None:
        raise RuntimeError("no loop")

    outbox.quarantines.subscribe(broken)
    outbox.quarantines.subscribe(lambda seq, _reason: told.append(seq))
    assert outbox.pending(0, 10) == []
    assert outbox.quarantined() == 1 and len(told) == 1
    outbox.close()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(settings(tmp_path), SimulatedHome())
    yield gw
    gw.outbox.close()



def failing(*_args: Any) -> None:
    raise RuntimeError("a listener that breaks")


def test_a_failing_listener_after_a_questionnaire_is_stored_gives_no_http_500(gateway: Gateway) -> None:
    gateway.pipeline.questionnaires.subscribe(failing)
    client = client_for(gateway)
    token = csrf_of(client.get("/").text)
    r = client.post("/api/questionnaire", json={"answers": {"cough": "worse"}}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    assert gateway.pipeline.counts["questionnaires"] == 1 and gateway.outbox.depth() == 1
    r = client.post("/questionnaire", data={"cough": "worse", "csrf": token})
    assert r.status_code == 303
    assert gateway.pipeline.counts["questionnaires"] == 2 and gateway.outbox.depth() == 2
