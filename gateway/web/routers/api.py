"""The JSON API behind both pages (/api/..., described at /api/openapi.json), for a kiosk or a tablet app.
State-changing calls need the session's CSRF token in the X-CSRF-Token header."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from gateway.web.actions import answer_unassigned, store_answers
from gateway.web.context import PagesDep
from gateway.web.models import AnswerResult, AnswersIn, Done
from gateway.web.security import csrf_ok
from gateway.web.technician import ServiceView, service_view
from gateway.web.texts import ZONE_WORDS, pick
from gateway.web.view import PatientView

LONG_POLL_S = 20.0

router = APIRouter(prefix="/api")


@router.get("/patient", response_model=PatientView, tags=["patient"])
async def api_patient(request: Request, pages: PagesDep) -> Response:
    """Everything the patient's page shows, in the session's language."""
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=True)
    return pages.finish(request, JSONResponse(pages.view_for(s).model_dump(mode="json")))


@router.get("/changes", tags=["patient"])
async def api_changes(request: Request, pages: PagesDep, since: int = -1) -> Response:
    """Waits (up to 20 s) until the page's state differs from version `since`; returns the version."""
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=True)
    version = await pages.live.wait_change(since, LONG_POLL_S)
    return pages.finish(request, JSONResponse({"version": version}))


@router.post("/unassigned/{record_id}/{answer}", response_model=Done, tags=["patient"])
async def api_unassigned(request: Request, pages: PagesDep, record_id: str, answer: Literal["confirm", "reject"],
                         x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The patient's answer to "was this you?": `confirm` stores the weighing as the patient's
    reading (it then goes to the central service), `reject` discards it. Needs the X-CSRF-Token header."""
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=True)
    if not csrf_ok(s, x_csrf_token):
        return pages.bad_csrf(request, api=True)
    status, detail = await answer_unassigned(pages, record_id, answer == "confirm")
    return pages.finish(request, JSONResponse(Done(ok=status == 200, detail=detail).model_dump(), status_code=status))


@router.post("/questionnaire", response_model=AnswerResult, tags=["patient"])
async def api_questionnaire(request: Request, pages: PagesDep, body: AnswersIn,
                            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The day's questionnaire answers (question -> answer, see zoning/questionnaire.py): judged by the
    plan in force, stored sealed and sent to the central service as a `questionnaire` reading."""
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=True)
    if not csrf_ok(s, x_csrf_token):
        return pages.bad_csrf(request, api=True)
    status, result = await store_answers(pages, body.answers)
    if isinstance(result, str):
        return pages.finish(request, JSONResponse({"detail": result}, status_code=status))
    result = result.model_copy(update={"zone_word": pick(ZONE_WORDS[result.zone], s.language)})
    return pages.finish(request, JSONResponse(result.model_dump()))


@router.get("/service", response_model=ServiceView, tags=["technician"])
async def api_service(request: Request, pages: PagesDep) -> Response:
    """Devices, outbox, broker, plan in force and faults. Needs the technician login."""
    s = pages.session_of(request)
    if not s.technician:
        return pages.refused(request, api=True)
    view = await service_view(pages.gw, pages.live, pages.scan_state)
    return pages.finish(request, JSONResponse(view.model_dump(mode="json")))
