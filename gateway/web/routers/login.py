"""The session's own forms: the technician's login and logout, and the language of the pages."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from gateway.web.context import PagesDep
from gateway.web.security import csrf_ok, verify_password

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.post("/language")
async def language(request: Request, pages: PagesDep, language: Annotated[Literal["nb", "en"], Form()],
                   csrf: Annotated[str, Form()] = "",
                   back: Annotated[Literal["/", "/service"], Form()] = "/") -> Response:
    s = pages.session_of(request)
    if not csrf_ok(s, csrf):
        return pages.bad_csrf(request, api=False)
    s.language = language
    return pages.finish(request, RedirectResponse(back, status_code=303))


@router.post("/service/login")
async def login(request: Request, pages: PagesDep, password: Annotated[str, Form(max_length=256)] = "",
                csrf: Annotated[str, Form()] = "") -> Response:
    s = pages.session_of(request)
    if not csrf_ok(s, csrf):
        return pages.bad_csrf(request, api=False)
    configured = pages.settings.web.technician_password_hash
    if not configured:
        return pages.render(request, "login.html", 503, configured=False, retry_after=None,
                            error="no technician password is configured: set [web] technician_password_hash")
    guard = pages.guard
    wait = guard.retry_after_s()
    if wait > 0:
        log.warning("web: technician login refused: too many wrong passwords (retry in %.0f s)", wait)
        response = pages.render(request, "login.html", 429, configured=True, retry_after=int(wait) + 1, error=None)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if not await asyncio.to_thread(verify_password, password, configured):
        guard.failed()
        log.warning("web: wrong technician password")
        return pages.render(request, "login.html", 401, configured=True, retry_after=None, error="wrong password")
    guard.succeeded()
    request.state.session = pages.sessions.promote(s)
    log.info("web: technician logged in")
    return pages.finish(request, RedirectResponse("/service", status_code=303))


@router.post("/service/logout")
async def logout(request: Request, pages: PagesDep, csrf: Annotated[str, Form()] = "") -> Response:
    s = pages.session_of(request)
    if not csrf_ok(s, csrf):
        return pages.bad_csrf(request, api=False)
    pages.sessions.end(s)
    request.state.session = pages.sessions.new(s.language)
    return pages.finish(request, RedirectResponse("/service", status_code=303))
