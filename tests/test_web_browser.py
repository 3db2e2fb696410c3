"""The pages in a real browser: Debian's chromium driven by Playwright, against the whole gateway with
simulated BLE devices, a real Mosquitto and the reference central receiver (tests/browser_home.py).

Screenshots for the README are taken here, into docs/screenshots/."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from hardware_sims.blood_pressure import CuffResult
from hardware_sims.gatt_devices import SpotCheck
from tests.browser_home import SCALE_USER, TECHNICIAN_PASSWORD, Home, running_home
from tests.conftest import Mosquitto

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
KIOSK: ViewportSize = {"width": 800, "height": 480}  # the Raspberry Pi touch display
TABLET: ViewportSize = {"width": 1024, "height": 768}
SEEN_S = 30_000  # ms: a BLE session on the simulated radio (slow on a loaded machine), then the page


# One browser for all the tests here; module scope (not session): Playwright's sync API keeps an event
# loop running in this thread while it is open, and the asyncio tests of other modules need the thread.
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
    with running_home(tmp_path, mosquitto.port) as h:
        yield h


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=KIOSK)
    yield context.new_page()
    context.close()


def eventually(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} node(s))" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


def card(page: Page, kind: str) -> Any:
    return page.locator(f'.card[data-kind="{kind}"]')


def test_red_spo2_shows_the_emergency_notice_above_everything_and_a_later_green_weight_does_not_hide_it(
        home: Home, page: Page) -> None:
    page.goto(home.url)
    expect(page.locator("html")).to_have_attribute("lang", "nb")
    expect(page.locator(".empty")).to_be_visible()

    home.measure(home.oximeter, lambda: home.oximeter.measure(SpotCheck(88, 90)))
    spo2 = card(page, "spo2")
    expect(spo2).to_have_attribute("data-zone", "red", timeout=SEEN_S)
    expect(spo2).to_contain_text("RØD")
    expect(spo2).to_contain_text("88 %")
    expect(spo2).to_contain_text("Oksygenmetningen er for lav")  # the plan's advice, at once
    notice = page.locator(".emergency")
    expect(notice).to_contain_text("116 117")
    expect(notice).to_contain_text("113")

    # A heart-failure patient's first weighing is the reference the next is compared with (unassessed,
    # never green); the second one is judged: green.
    home.measure(home.scale, lambda: home.scale.measure("80.2", user=SCALE_USER))
    weight = card(page, "body_weight")
    expect(weight).to_have_attribute("data-zone", "unassessed", timeout=SEEN_S)
    expect(notice).to_be_visible()
    home.measure(home.scale, lambda: home.scale.measure("80.4", user=SCALE_USER))
    expect(weight).to_have_attribute("data-zone", "green", timeout=SEEN_S)
    expect(weight).to_contain_text("80,4 kg")
    expect(notice).to_be_visible()
    # Above everything else on the page: the first thing in the main part, and highest on the screen.
    first = page.locator("#live > *").first
    expect(first).to_have_class("emergency")
    notice_top = notice.bounding_box()
    assert notice_top is not None
    for other in page.locator("main section, main article").all():
        box = other.bounding_box()
        assert box is not None and box["y"] >= notice_top["y"]
    shot(page, "patient-red-nb")
    assert serious_violations(page) == []


def test_an_unassigned_weighing_confirmed_by_a_click_reaches_the_central_service_and_a_rejected_one_never_does(
        home: Home, page: Page) -> None:
    page.goto(home.url)
    home.measure(home.scale, lambda: home.scale.measure("82.4"), "unassigned")  # who stood on the shared scale?
    prompt = page.locator(".unassigned")
    expect(prompt).to_contain_text("Var dette deg?", timeout=SEEN_S)
    expect(prompt).to_contain_text("82,4 kg")
    assert card(page, "body_weight").count() == 0  # never guessed: not the patient's until they say so
    assert serious_violations(page) == []
    prompt.get_by_role("button", name="Ja, det var meg").click()
    expect(prompt).to_have_count(0)
    expect(card(page, "body_weight")).to_contain_text("82,4 kg")
    weights = eventually(lambda: [r for r in home.central_readings() if r.type == "body_weight"])
    assert [r.components["weight"].value for r in weights] == [Decimal("82.4")]  # the scale's 82.400 kg

    home.measure(home.scale, lambda: home.scale.measure("61.2"), "unassigned")  # someone else in the household
    expect(prompt).to_contain_text("61,2 kg", timeout=SEEN_S)
    page.keyboard.press("Tab")  # keyboard reachable: the answer buttons take focus
    page.get_by_role("button", name="Nei, ikke meg").focus()
    page.keyboard.press("Enter")
    expect(prompt).to_have_count(0)
    expect(card(page, "body_weight")).to_contain_text("82,4 kg")  # the patient's weighing stays the latest
    time.sleep(1.0)  # anything sent would have reached the receiver by now
    assert [r.components["weight"].value for r in home.central_readings() if r.type == "body_weight"] == [
        Decimal("82.4")]
    assert home.gateway.pipeline.unassigned == []


def test_a_questionnaire_answered_by_clicks_gets_its_zone_is_stored_and_reaches_the_central_service(
        home: Home, page: Page) -> None:
    page.goto(home.url)
    # Large type, big targets, nothing wider than the 800x480 screen, every control reachable by keyboard.
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 20
    small = page.evaluate("""[...document.querySelectorAll('button, a:not(.skip), label.choice')]
        .filter(e => { const r = e.getBoundingClientRect(); return r.height < 44 || r.width < 44; })
        .map(e => e.textContent.trim())""")
    assert small == []
    assert page.evaluate("document.documentElement.scrollWidth") <= KIOSK["width"]
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Send svarene":
            break
    else:
        pytest.fail("the questionnaire's button cannot be reached with the keyboard")
    page.get_by_role("group", name="Pusten").get_by_text("Tyngre enn vanlig", exact=True).click()
    page.get_by_role("group", name="Farge på slimet").get_by_text("Gult eller grønt").click()
    page.get_by_role("button", name="Send svarene").click()
    answers = card(page, "questionnaire")
    expect(answers).to_have_attribute("data-zone", "red")  # two cardinal symptoms (Anthonisen)
    expect(answers).to_contain_text("Tyngre enn vanlig")
    expect(page.locator(".saved")).to_be_visible()
    expect(page.locator(".emergency")).to_contain_text("113")
    sent = eventually(lambda: [r for r in home.central_readings() if r.type == "questionnaire"])
    assert len(sent) == 1
    assert sent[0].answers == {"breathlessness": "worse", "sputum_colour": "yellow_green"}
    assert sent[0].assessment.zone == "red"
    assert {rule.rule for rule in sent[0].assessment.rules} >= {"copd.symptoms.two-cardinal"}


def test_the_technician_page_refuses_without_login_then_shows_the_low_battery_fault(home: Home, page: Page) -> None:
    response = page.goto(home.url + "service")
    assert response is not None and response.status == 401
    assert page.request.get(home.url + "api/service").status == 401
    home.measure(home.scale, lambda: home.scale.measure("80.4", user=SCALE_USER))  # the session reads the battery
    page.reload()
    expect(page.locator("body")).not_to_contain_text("battery")

    # Bokmål first, like the patient's page (issue 19.8), the login too.
    page.get_by_label("Passord").fill("not the password")
    page.get_by_role("button", name="Logg inn").click()
    expect(page.locator(".error")).to_contain_text("feil passord")

    page.get_by_label("Passord").fill(TECHNICIAN_PASSWORD)
    page.get_by_role("button", name="Logg inn").click()
    expect(page.locator("h1")).to_have_text("Gatewayens tjenesteside")
    expect(page.locator(".faults")).to_contain_text("SIMSCALE0001 (body_weight) battery 15 %: replace the batteries")
    expect(page.locator("table")).to_contain_text("SIM-SCALE-1")
    expect(page.locator("table")).to_contain_text("Batteri")
    expect(page.locator("body")).to_contain_text("tilkoblet")
    expect(page.locator("body")).to_contain_text("Tider i Europe/Oslo.")
    page.set_viewport_size(TABLET)
    shot(page, "service-nb")
    assert serious_violations(page) == []
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Gateway service")
    shot(page, "service-en")
    page.get_by_role("button", name="Start a pairing scan").click()
    expect(page.locator("#nearby")).to_contain_text("scan requested")
    assert re.search(r"scan requested \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T", page.locator("#nearby").inner_text())


def test_green_yellow_red_in_both_languages(home: Home, page: Page) -> None:
    page.goto(home.url)
    for (systolic, diastolic), zone, word_nb, word_en in (((128, 82), "green", "GRØNN", "GREEN"),
                                                          ((106, 68), "yellow", "GUL", "YELLOW"),
                                                          ((88, 62), "red", "RØD", "RED")):
        home.measure(home.cuff, partial(home.cuff.measure, CuffResult(systolic, diastolic, 80)))
        expect(card(page, "blood_pressure")).to_have_attribute("data-zone", zone, timeout=SEEN_S)
        expect(card(page, "blood_pressure")).to_contain_text(word_nb)
        expect(card(page, "blood_pressure")).to_contain_text(f"{systolic}/{diastolic} mmHg")
        if zone != "red":
            shot(page, f"patient-{zone}-nb")
        page.get_by_role("button", name="English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(card(page, "blood_pressure")).to_contain_text(word_en)
        expect(card(page, "blood_pressure")).to_contain_text("Blood pressure")
        shot(page, f"patient-{zone}-en")
        page.get_by_role("button", name="Norsk").click()
        expect(page.locator("html")).to_have_attribute("lang", "nb")
    expect(page.locator(".emergency")).to_contain_text("legevakten (116 117) eller 113")
    page.set_viewport_size(TABLET)
    shot(page, "patient-red-tablet-nb")


# ---- issue 18.8: the notice is never clipped, on a phone either ---------------------------------------

WIDTHS = (320, 360, 375, 390, 412, 480, 500, 540, 600, 768, 800, 1024, 1280)
PHONE: ViewportSize = {"width": 360, "height": 640}

# Where the notice and its text are, against the viewport and the notice's own box: every line box of the
# text (a Range's client rects) must lie inside both, and nothing on the page may be wider than the window.
MEASURE_NOTICE = """() => {
  const notice = document.querySelector('.emergency');
  const box = notice.getBoundingClientRect();
  const range = document.createRange();
  range.selectNodeContents(notice);
  const lines = [...range.getClientRects()].filter(r => r.width > 0 && r.height > 0);
  return {
    innerWidth: window.innerWidth, innerHeight: window.innerHeight,
    scrollWidth: document.documentElement.scrollWidth, scrollY: window.scrollY,
    box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom},
    text: {left: Math.min(...lines.map(r => r.left)), right: Math.max(...lines.map(r => r.right)),
           top: Math.min(...lines.map(r => r.top)), bottom: Math.max(...lines.map(r => r.bottom))},
    overflowing: notice.scrollWidth > notice.clientWidth,
  };
}"""


def clipped(m: dict[str, Any]) -> list[str]:
    """What of the notice is cut off or makes the page scroll sideways (empty when nothing is)."""
    width, box, text = m["innerWidth"], m["box"], m["text"]
    problems = []
    if m["scrollWidth"] > width:
        problems.append(f"the page is {m['scrollWidth']} px wide in a {width} px window")
    if box["left"] < 0 or box["right"] > width:
        problems.append(f"the notice spans {box['left']:.0f}..{box['right']:.0f} px")
    if text["left"] < max(box["left"], 0) or text["right"] > min(box["right"], width):
        problems.append(f"its text spans {text['left']:.0f}..{text['right']:.0f} px")
    if m["overflowing"]:
        problems.append("its content is wider than its box")
    return problems


def test_the_emergency_notice_is_never_clipped_at_any_width_in_either_language(home: Home, browser: Browser) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(home.url)
    home.measure(home.oximeter, lambda: home.oximeter.measure(SpotCheck(88, 90)))
    expect(card(page, "spo2")).to_have_attribute("data-zone", "red", timeout=SEEN_S)
    found: dict[tuple[str, int], list[str]] = {}
    for language, switch in (("nb", "English"), ("en", "Norsk")):
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 640 if width < 600 else 800})
            m = page.evaluate(MEASURE_NOTICE)
            print(language, width, m)  # the figures behind docs/safety.md
            if problems := clipped(m):
                found[(language, width)] = problems
            if width in (320, 360, 412):
                page.screenshot(path=str(SCREENSHOTS / f"patient-red-{width}-{language}.png"))
        page.get_by_role("button", name=switch).click()
        expect(page.locator("html")).not_to_have_attribute("lang", language)
    context.close()
    assert found == {}


def test_on_a_phone_the_notice_and_the_red_card_are_both_on_the_first_screen(home: Home, browser: Browser) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(home.url)
    home.measure(home.oximeter, lambda: home.oximeter.measure(SpotCheck(88, 90)))
    home.measure(home.cuff, partial(home.cuff.measure, CuffResult(128, 82, 80)))  # a green beside it
    red = card(page, "spo2")
    expect(red).to_have_attribute("data-zone", "red", timeout=SEEN_S)
    expect(card(page, "blood_pressure")).to_have_attribute("data-zone", "green", timeout=SEEN_S)
    for language in ("nb", "en"):
        if language == "en":
            page.get_by_role("button", name="English").click()
            expect(page.locator("html")).to_have_attribute("lang", "en")
        assert page.evaluate("window.scrollY") == 0
        notice = page.locator(".emergency").bounding_box()
        heading = red.locator("h2").bounding_box()
        value = red.locator(".value").bounding_box()
        whole = red.bounding_box()
        print(language, "notice", notice, "red card", whole, "its value", value)
        assert notice is not None and heading is not None and value is not None and whole is not None
        assert notice["y"] >= 0 and notice["y"] + notice["height"] <= PHONE["height"], notice
        # Below it the red card, whole: zone word, what was measured, the value, when and the advice.
        assert heading["y"] >= notice["y"] + notice["height"]
        assert value["y"] + value["height"] <= PHONE["height"], (language, value)
        assert whole["y"] + whole["height"] <= PHONE["height"], (language, whole)
        assert page.evaluate(MEASURE_NOTICE)["scrollWidth"] <= PHONE["width"]
        page.screenshot(path=str(SCREENSHOTS / f"patient-red-phone-{language}.png"))
        assert serious_violations(page) == []
    context.close()
