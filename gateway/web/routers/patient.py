"""The patient's pages: the page itself (/), its live part (/live), and its two forms ("was this you?"
and the questionnaire). Forms work without JavaScript."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.web.actions import answer_unassigned, store_answers
from gateway.web.context import PagesDep
from gateway.web.security import csrf_ok
from gateway.web.texts import ui
from zoning import QUESTIONS

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def patient_page(request: Request, pages: PagesDep) -> Response:
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=False)
    saved = request.cookies.get("dho_saved")
    response = pages.render(request, "patient.html", view=pages.view_for(s), saved=saved)
    if saved:
        response.delete_cookie("dho_saved", path="/")
    return response


@router.get("/live", response_class=HTMLResponse)
async def live_part(request: Request, pages: PagesDep) -> Response:
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=True)
    return pages.render(request, "live.html", view=pages.view_for(s))


@router.post("/unassigned")
async def unassigned_form(request: Request, pages: PagesDep, id: Annotated[str, Form(max_length=64)],
                          answer: Annotated[Literal["yes", "no"], Form()],
                          csrf: Annotated[str, Form()] = "") -> Response:
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=False)
    if not csrf_ok(s, csrf):
        return pages.bad_csrf(request, api=False)
    status, _detail = await answer_unassigned(pages, id, answer == "yes")
    if status == 503:
        return pages.render(request, "message.html", 503, message=ui("not_saved", s.language))
    return pages.finish(request, RedirectResponse("/", status_code=303))


@router.post("/questionnaire")
async def questionnaire_form(request: Request, pages: PagesDep) -> Response:
    s = pages.session_of(request)
    if not pages.allowed(request, s):
        return pages.refused(request, api=False)
    form = await request.form()
    if not csrf_ok(s, str(form.get("csrf", ""))):
        return pages.bad_csrf(request, api=False)
    status, _result = await store_answers(pages, {q: str(form.get(q, "")) for q in QUESTIONS})
    if status == 400:
        return pages.render(request, "message.html", 400, message=ui("answers_missing", s.language))
    if status != 200:
        return pages.render(request, "message.html", status, message=ui("not_saved", s.language))
    response = RedirectResponse("/#cards", status_code=303)
    response.set_cookie("dho_saved", "1", max_age=30, httponly=True, samesite="strict", path="/")
    return pages.finish(request, response)
