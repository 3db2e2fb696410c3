"""The patient's pages: the page itself (/), its live part (/live), and its two forms ("was this you?"
and the questionnaire). Forms work without JavaScript. Open on the box's own screen; from the network
only after the technician's login (gateway/web/deps.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.web.actions import answer_unassigned, store_answers
from gateway.web.context import PagesDep
from gateway.web.deps import SessionDep, csrf_form, patient_api_access, patient_page_access
from gateway.web.texts import ui
from zoning import QUESTIONS

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse, dependencies=[patient_page_access])
async def patient_page(request: Request, pages: PagesDep, s: SessionDep) -> Response:
    """The patient's page; "saved" once after the questionnaire was stored."""
    saved = request.cookies.get("dho_saved")
    response = pages.render(request, "patient.html", view=pages.view_for(s), saved=saved,
                            answer_id=uuid.uuid4().hex)  # the questionnaire form's id: a resend is known
    if saved:
        response.delete_cookie("dho_saved", path="/")
    return response


@router.get("/live", response_class=HTMLResponse, dependencies=[patient_api_access])
async def live_part(request: Request, pages: PagesDep, s: SessionDep) -> Response:
    """The part of the page the script swaps in when something changed."""
    return pages.render(request, "live.html", view=pages.view_for(s))


@router.post("/unassigned", dependencies=[patient_page_access, csrf_form])
async def unassigned_form(request: Request, pages: PagesDep, s: SessionDep,
                          id: Annotated[str, Form(max_length=64)],
                          answer: Annotated[Literal["yes", "no"], Form()]) -> Response:
    """The form's answer to "was this you?"."""
    status, _detail = await answer_unassigned(pages, id, answer == "yes")
    if status == 503:
        return pages.render(request, "message.html", 503, message=ui("not_saved", s.language))
    return RedirectResponse("/", status_code=303)


@router.post("/questionnaire", dependencies=[patient_page_access, csrf_form])
async def questionnaire_form(request: Request, pages: PagesDep, s: SessionDep) -> Response:
    """The form's questionnaire answers; back to the cards, which show the zone."""
    form = await request.form()
    status, _result = await store_answers(pages, {q: str(form.get(q, "")) for q in QUESTIONS},
                                          str(form.get("answer_id", "")) or None)
    if status == 400:
        return pages.render(request, "message.html", 400, message=ui("answers_missing", s.language))
    if status != 200:
        return pages.render(request, "message.html", status, message=ui("not_saved", s.language))
    response = RedirectResponse("/#cards", status_code=303)
    response.set_cookie("dho_saved", "1", max_age=30, httponly=True, samesite="strict", path="/")
    return response
