"""The nurses' worklist in a real browser (Debian's chromium through Playwright), against a whole home:
a simulated oximeter measures a red, the gateway stores and sends it, the embedded central's ingest
worker stores it with its alert, and the open worklist shows it without a reload. The nurse takes it,
notes and closes it; the coordinator's audit trail shows who did what. axe-core finds no serious or
critical violations. Screenshots for the docs go to docs/screenshots/."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from hardware_sims.gatt_devices import SpotCheck
from tests.browser_home import Home
from tests.conftest import Mosquitto

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
PASSWORD = "correct horse battery"
LIVE_S = 2_000  # a new red appears on an open worklist within 2 s of being stored


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run the tests through `make test`, which installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def home(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Home]:
    h = Home(tmp_path, mosquitto.port)
    h.central.open_worklist(port=0, users=(
        ("kari", "t-test", "nurse", PASSWORD), ("siri", "t-test", "coordinator", PASSWORD),
        ("eve", "t-other", "nurse", PASSWORD)))
    h.start()
    try:
        yield h
    finally:
        h.stop()


def new_page(browser: Browser) -> Page:
    return browser.new_context(viewport={"width": 1280, "height": 800}).new_page()


def login(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_label("Brukernavn").fill(name)
    page.get_by_label("Passord").fill(PASSWORD)
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} node(s))" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_red_measured_at_home_appears_live_is_taken_noted_closed_and_audited(home: Home, browser: Browser) -> None:
    url = home.central.worklist_address
    assert url is not None
    page = new_page(browser)
    login(page, url, "kari")
    expect(page.locator("html")).to_have_attribute("lang", "nb")
    # The home has no history yet: its gateway reports every scheduled kind overdue, and they are alerts.
    expect(page.locator("tr", has_text="Måling forsinket: blood_pressure")).to_have_count(1, timeout=15_000)
    page.get_by_label("Type").select_option("reading")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.get_by_text("Ingen åpne varsler.")).to_be_visible()
    assert serious_violations(page) == []

    home.measure(home.oximeter, lambda: home.oximeter.measure(SpotCheck(88, 90)))
    stored = time.monotonic()
    deadline = stored + 30
    while home.central.count() == 0 and time.monotonic() < deadline:  # the gateway's send, the worker's commit
        time.sleep(0.02)
    row = page.locator("tr.sev-red")
    expect(row).to_be_visible(timeout=LIVE_S)  # no reload: the page follows the list itself
    expect(row).to_contain_text("p-web-test")
    expect(row).to_contain_text("spo2")
    expect(row).to_contain_text("Rød")
    shot(page, "worklist-red-nb")

    row.get_by_role("link").click()
    alert_url = page.url
    expect(page.get_by_text("spo2 88 %").first).to_be_visible()
    assert serious_violations(page) == []
    page.get_by_role("button", name="Ta saken").click()
    expect(page.locator("#assignee")).to_have_text("kari")
    expect(page.locator("#state")).to_have_text("Under arbeid")
    page.get_by_label("Notat").fill("Ringte pasienten: tungpust, ny måling om en time.")
    page.get_by_role("button", name="Skriv notat").click()
    expect(page.locator(".notes")).to_contain_text("tungpust")
    shot(page, "worklist-alert-nb")
    page.get_by_role("button", name="Lukk (ferdig)").click()
    expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()
    expect(page.locator("tr.sev-red")).to_have_count(0)

    # English too.
    page.get_by_role("button", name="Switch to English").click()
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert serious_violations(page) == []
    shot(page, "worklist-en")
    page.get_by_role("link", name="Stopped measuring (14 days)").click()
    expect(page.get_by_role("heading", name="Stopped measuring (14 days)")).to_be_visible()
    assert serious_violations(page) == []

    coordinator = new_page(browser)
    login(coordinator, url, "siri")
    coordinator.get_by_role("link", name="Logg over tilgang og handlinger").click()
    trail = coordinator.locator("table.audit tbody")
    for who, what in (("kari", "done"), ("kari", "noted"), ("kari", "taken"), ("kari", "viewed"), ("kari", "login")):
        expect(trail.locator("tr", has_text=re.compile(rf"{who}\s*{what}"))).not_to_have_count(0)
    assert serious_violations(coordinator) == []
    shot(coordinator, "worklist-audit-nb")

    # Another tenant's nurse: her list is empty, and the alert's address is "not found".
    assert re.search(r"/alerts/[0-9a-f-]{36}$", alert_url)
    other = new_page(browser)
    login(other, url, "eve")
    expect(other.get_by_text("Ingen åpne varsler.")).to_be_visible()
    response = other.goto(alert_url)
    assert response is not None and response.status == 404
