"""What the pages' forms and the JSON API both do: answer "was this you?", store the questionnaire's
answers, start a pairing scan. Each answers with a status and a detail; the routes say it their way."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from gateway.storage import OutboxUnavailable
from gateway.web.context import Pages
from gateway.web.models import AnswerResult
from zoning import Answers

log = logging.getLogger(__name__)


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


async def store_answers(pages: Pages, answers: dict[str, str]) -> tuple[int, AnswerResult | str]:
    """Judge and store the questionnaire's answers (empty answers dropped)."""
    gw, now = pages.gw, pages.now
    try:
        parsed = Answers(answered=now(), answers={q: a for q, a in answers.items() if a})
    except ValidationError as exc:
        return 400, f"bad answers: {exc.errors()[0]['msg']}"
    if not parsed.answers:
        return 400, "no question answered"
    try:
        record_id, assessment = await gw.pipeline.on_answers(parsed)
    except OutboxUnavailable as exc:
        log.error("web: questionnaire answers could not be stored: %s", exc)
        return 503, "could not be stored just now; try again shortly"
    return 200, AnswerResult(id=record_id, zone=assessment.zone.value, zone_word=assessment.zone.value,
                             advice=list(assessment.advice_keys))


async def start_scan(pages: Pages) -> None:
    """The technician's pairing scan, if the device source scans on request; the note says what it did."""
    gw, scan_state, now = pages.gw, pages.scan_state, pages.now
    scan_state.at = now()
    if gw.source.scans_on_request:
        await gw.source.scan()
        scan_state.note = "scan done: what the device source heard"
    else:
        scan_state.note = ("this device source scans all the time and pairs provisioned devices when they "
                              "advertise; below is what it has heard")
    log.info("web: pairing scan requested by the technician")
