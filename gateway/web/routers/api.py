"""The JSON API behind both pages (/api/..., described at /api/openapi.json), for a kiosk or a tablet app.
Access as for the pages (gateway/web/deps.py); state-changing calls need the session's CSRF token in
the X-CSRF-Token header."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from gateway.web.actions import answer_unassigned, store_answers
from gateway.web.context import PagesDep
from gateway.web.deps import SessionDep, csrf_header, patient_api_access, technician_api_access
from gateway.web.models import AnswerResult, AnswersIn, Done
from gateway.web.technician import ServiceView, service_view
from gateway.web.texts import ZONE_WORDS, pick
from gateway.web.view import PatientView

LONG_POLL_S = 20.0

router = APIRouter(prefix="/api")


@router.get("/patient", response_model=PatientView, tags=["patient"], dependencies=[patient_api_access])
async def api_patient(pages: PagesDep, s: SessionDep) -> Response:
    """Everything the patient's page shows, in the session's language."""
    return JSONResponse(pages.view_for(s).model_dump(mode="json"))


@router.get("/changes", tags=["patient"], dependencies=[patient_api_access])
async def api_changes(pages: PagesDep, since: int = -1) -> Response:
    """Waits (up to 20 s) until the page's state differs from version `since`; returns the version."""
    version = await pages.live.wait_change(since, LONG_POLL_S)
    return JSONResponse({"version": version})


@router.post("/unassigned/{record_id}/{answer}", response_model=Done, tags=["patient"],
             dependencies=[patient_api_access, csrf_header])
async def api_unassigned(pages: PagesDep, record_id: str, answer: Literal["confirm", "reject"]) -> Response:
    """The patient's answer to "was this you?": `confirm` stores the weighing as the patient's
    reading (it then goes to the central service), `reject` discards it. Needs the X-CSRF-Token header."""
    status, detail = await answer_unassigned(pages, record_id, answer == "confirm")
    return JSONResponse(Done(ok=status == 200, detail=detail).model_dump(), status_code=status)


@router.post("/questionnaire", response_model=AnswerResult, tags=["patient"],
             dependencies=[patient_api_access, csrf_header])
async def api_questionnaire(pages: PagesDep, s: SessionDep, body: AnswersIn) -> Response:
    """The day's questionnaire answers (question -> answer, see zoning/questionnaire.py): judged by the
    plan in force, stored sealed and sent to the central service as a `questionnaire` reading."""
    status, result = await store_answers(pages, body.answers, body.id)
    if isinstance(result, str):
        return JSONResponse({"detail": result}, status_code=status)
    result = result.model_copy(update={"zone_word": pick(ZONE_WORDS[result.zone], s.language)})
    return JSONResponse(result.model_dump())


@router.get("/service", response_model=ServiceView, tags=["technician"], dependencies=[technician_api_access])
async def api_service(pages: PagesDep) -> Response:
    """Devices, outbox, broker, plan in force and faults. Needs the technician login."""
    view = await service_view(pages.gw, pages.live, pages.scan_state)
    return JSONResponse(view.model_dump(mode="json"))
