"""The session's own forms: the technician's login and logout, and the language of the pages. Each
needs the session's CSRF token (gateway/web/deps.py); none needs a login."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from gateway.web.context import PagesDep
from gateway.web.deps import SessionDep, csrf_form
from gateway.web.security import verify_password

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False, dependencies=[csrf_form])


@router.post("/language")
async def language(s: SessionDep, language: Annotated[Literal["nb", "en"], Form()],
                   back: Annotated[Literal["/", "/service"], Form()] = "/") -> Response:
    """The session's language; back to the page it was chosen on."""
    s.language = language
    return RedirectResponse(back, status_code=303)


@router.post("/service/login")
async def login(request: Request, pages: PagesDep, s: SessionDep,
                password: Annotated[str, Form(max_length=256)] = "") -> Response:
    """The technician's password, rate limited for the whole box (security.LoginGuard); a new session
    after a login (the one used before it cannot be planted)."""
    configured = pages.settings.web.technician_password_hash
    if not configured:
        return pages.render(request, "login.html", 503, configured=False, retry_after=None,
                            error=None)
    guard = pages.guard_for(request)
    wait = guard.retry_after_s()
    if wait > 0:
        log.warning("web: technician login refused: too many wrong passwords (retry in %.0f s)", wait)
        response = pages.render(request, "login.html", 429, configured=True, retry_after=int(wait) + 1, error=None)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    guard.begin()  # counted now, not when the hash is done: concurrent guesses cannot all slip through
    right = False
    try:
        right = await asyncio.to_thread(verify_password, password, configured)
    finally:
        guard.succeeded() if right else guard.failed()
    if not right:
        log.warning("web: wrong technician password")
        return pages.render(request, "login.html", 401, configured=True, retry_after=None, error="wrong_password")
    request.state.session = pages.sessions.promote(s)
    log.info("web: technician logged in")
    return RedirectResponse("/service", status_code=303)


@router.post("/service/logout")
async def logout(request: Request, pages: PagesDep, s: SessionDep) -> Response:
    """End the technician's session; a new, plain one in the same language."""
    pages.sessions.end(s)
    request.state.session = pages.sessions.new(s.language)
    return RedirectResponse("/service", status_code=303)
