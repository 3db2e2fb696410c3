"""The pages' FastAPI dependencies: the session, who may see a route, and the CSRF token — declared once
here and named by each route, instead of repeated in every handler. (FastAPI's full-stack template does
the same in `backend/app/api/deps.py`.)

- `SessionDep`: the request's session, found by its cookie or started (`SessionCookie` in
  middleware.py writes the cookie on the way out, whatever answered).
- Access: `patient_page_access`/`patient_api_access` let in the technician and the box's own screen
  (loopback); `technician_page_access`/`technician_api_access` only the technician;
  `service_page_access` guards the technician's page itself, which answers a stranger with the login
  form.
- CSRF: `csrf_form` (form field `csrf`) and `csrf_header` (header `X-CSRF-Token`).

A refusal is raised (`LoginNeeded`, `BadCsrf`) and answered by its exception handler, as a page or as
JSON depending on the route. Access is checked before the CSRF token, and both before the request's own
fields are validated: a stranger learns nothing about a form.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Form, Header, Request, Response
from fastapi.responses import JSONResponse

from gateway.web.context import PagesDep, pages_of
from gateway.web.security import Session, csrf_ok
from gateway.web.texts import ui

log = logging.getLogger(__name__)


def current_session(request: Request, pages: PagesDep) -> Session:
    """The request's session (by its cookie), or a new one."""
    return pages.session_of(request)


SessionDep = Annotated[Session, Depends(current_session)]


class LoginNeeded(Exception):
    """The route needs the technician's login (or, for the patient's pages, the box's own screen)."""

    def __init__(self, *, api: bool, say_why: bool = True) -> None:
        super().__init__("login needed")
        self.api, self.say_why = api, say_why


class BadCsrf(Exception):
    """A state-changing request without the session's CSRF token."""

    def __init__(self, *, api: bool) -> None:
        super().__init__("no valid CSRF token")
        self.api = api


class PatientAccess:
    """From the box itself (its kiosk screen) the patient's page is open; from the network only after
    the login (the listener is on the network only with `[web] lan = true`)."""

    def __init__(self, *, api: bool) -> None:
        self.api = api

    def __call__(self, request: Request, pages: PagesDep, s: SessionDep) -> Session:
        """The session, if it may see the patient's pages; else `LoginNeeded`."""
        if not pages.allowed(request, s):
            raise LoginNeeded(api=self.api)
        return s


class TechnicianAccess:
    """Only after the technician's login. `say_why`: a refused page says that a login is needed (the
    technician's own page just shows the login form)."""

    def __init__(self, *, api: bool, say_why: bool = True) -> None:
        self.api, self.say_why = api, say_why

    def __call__(self, s: SessionDep) -> Session:
        """The session, if it is the technician's; else `LoginNeeded`."""
        if not s.technician:
            raise LoginNeeded(api=self.api, say_why=self.say_why)
        return s


def check_csrf_form(s: SessionDep, csrf: Annotated[str, Form()] = "") -> None:
    """A form's `csrf` field must be the session's token."""
    if not csrf_ok(s, csrf):
        raise BadCsrf(api=False)


def check_csrf_header(s: SessionDep, x_csrf_token: Annotated[str | None, Header()] = None) -> None:
    """An API call's X-CSRF-Token header must be the session's token."""
    if not csrf_ok(s, x_csrf_token):
        raise BadCsrf(api=True)


patient_page_access = Depends(PatientAccess(api=False))
patient_api_access = Depends(PatientAccess(api=True))
technician_page_access = Depends(TechnicianAccess(api=False))
technician_api_access = Depends(TechnicianAccess(api=True))
service_page_access = Depends(TechnicianAccess(api=False, say_why=False))
csrf_form = Depends(check_csrf_form)
csrf_header = Depends(check_csrf_header)


async def login_needed(request: Request, exc: Exception) -> Response:
    """The answer to `LoginNeeded`: 401, as JSON or as the login form."""
    assert isinstance(exc, LoginNeeded)
    pages = pages_of(request)
    if exc.api:
        return JSONResponse({"detail": "login needed"}, status_code=401)
    error = "login_needed" if exc.say_why else None  # a key of texts.UI: the template says it in the page's language
    return pages.render(request, "login.html", 401, error=error, retry_after=None,
                        configured=bool(pages.settings.web.technician_password_hash))


async def bad_csrf(request: Request, exc: Exception) -> Response:
    """The answer to `BadCsrf`: 403, as JSON or as a page, and a log line (no patient data in it)."""
    assert isinstance(exc, BadCsrf)
    log.warning("web: a request without a valid CSRF token was refused (%s)", request.url.path)
    text = ui("forbidden_csrf", request.state.session.language)
    if exc.api:
        return JSONResponse({"detail": text}, status_code=403)
    return pages_of(request).render(request, "message.html", 403, message=text)


EXCEPTION_HANDLERS: dict[Any, Any] = {LoginNeeded: login_needed, BadCsrf: bad_csrf}
