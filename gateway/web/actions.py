"""What the pages' forms and the JSON API both do: answer "was this you?", store the questionnaire's
answers, start a pairing scan. Each answers with a status and a detail; the routes say it their way."""

from __future__ import annotations

import logging
import re

from pydantic import ValidationError

from gateway.ble import backends_of, pairing_scan
from gateway.storage import OutboxUnavailable
from gateway.web.context import Pages
from gateway.web.models import AnswerResult
from zoning import Answers

log = logging.getLogger(__name__)
PAIRING_SCAN_S = 4.0  # a device in pairing mode advertises at least once a second

# What a questionnaire form is rendered with (the page makes a uuid4 hex) and a client may send.
ANSWER_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


async def answer_unassigned(pages: Pages, record_id: str, yes: bool) -> tuple[int, str]:
    """Confirm (`yes`) or reject a weighing that waits for "was this you?"."""
    gw = pages.gw
    try:
        if yes:
            await gw.pipeline.confirm_unassigned(record_id)
        else:
            await gw.pipeline.reject_unassigned(record_id)
    except KeyError:
        return 404, "no such weighing waits for an answer (answered already?)"
    except OutboxUnavailable as exc:
        log.error("web: an answer to 'was this you?' could not be stored: %s", exc)
        return 503, "could not be stored just now; the question stays, try again shortly"
    return 200, "confirmed: stored as your reading" if yes else "discarded: not your reading"


async def store_answers(pages: Pages, answers: dict[str, str],
                        answer_id: str | None = None) -> tuple[int, AnswerResult | str]:
    """Judge and store the questionnaire's answers (empty answers dropped). With `answer_id`, the id the
    form was rendered with, the same answers sent again are answered like the first time, stored once."""
    gw, now = pages.gw, pages.now
    if answer_id is not None and not ANSWER_ID.fullmatch(answer_id):
        return 400, "bad answers: id: 8 to 64 letters, digits, - or _"
    try:
        parsed = Answers(answered=now(), answers={q: a for q, a in answers.items() if a})
    except ValidationError as exc:
        return 400, f"bad answers: {exc.errors()[0]['msg']}"
    if not parsed.answers:
        return 400, "no question answered"
    try:
        record_id, assessment = await gw.pipeline.on_answers(parsed, answer_id)
    except OutboxUnavailable as exc:
        log.error("web: questionnaire answers could not be stored: %s", exc)
        return 503, "could not be stored just now; try again shortly"
    return 200, AnswerResult(id=record_id, zone=assessment.zone.value, zone_word=assessment.zone.value,
                             advice=list(assessment.advice_keys))


async def start_scan(pages: Pages) -> None:
    """The technician's pairing scan: the scan `kit pair` runs (gateway.ble.pairing_scan), through the radio
    the device source gives (`pairing_radio`); what was heard is kept for the page, the note says what it did."""
    gw, scan_state, now = pages.gw, pages.scan_state, pages.now
    scan_state.at = now()
    log.info("web: pairing scan requested by the technician")
    source = gw.source
    if not source.scans_on_request:
        scan_state.heard, scan_state.note = [], "this device source has no radio to scan through"
        return
    try:
        radio = await source.pairing_radio()
        if radio is None:
            raise RuntimeError("no radio")
        heard = await pairing_scan(backends_of(radio), PAIRING_SCAN_S)
    except Exception as exc:  # no adapter, BlueZ not running: said on the page, the gateway goes on
        log.warning("web: the pairing scan failed: %s", exc)
        scan_state.heard, scan_state.note = [], f"the scan failed: {exc or type(exc).__name__}: is Bluetooth on?"
        return
    health = [n for n in heard if n.kind is not None]
    scan_state.heard = health
    others = len(heard) - len(health)
    scan_state.note = (f"scan done: {len(health)} health device(s) heard" +
                       (f", and {others} other device(s) that cannot be paired" if others else "") +
                       "; pair them with `dho-gateway kit pair`")
