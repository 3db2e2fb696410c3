"""What every route of the pages shares (`Pages`, one per app, kept in `app.state.pages`): the gateway's
interfaces, the sessions, the login guard, the templates; and the helpers that answer in the session's
language (the session cookie is written by middleware.SessionCookie)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from gateway.web.live import LiveState
from gateway.web.ports import GatewayPort
from gateway.web.security import LoginGuard, Session, Sessions
from gateway.web.technician import ScanState
from gateway.web.texts import ui
from gateway.web.view import PatientView, patient_view
from zoning import Language

COOKIE = "dho_session"


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an IP address: not known to be this box
        return False


class Pages:
    """The state the pages' routes share, and the helpers they answer with."""

    def __init__(self, gw: GatewayPort, live: LiveState, *, now: Callable[[], datetime],
                 guard: LoginGuard | None = None) -> None:
        self.gw, self.live, self.now = gw, live, now
        self.settings = gw.settings
        self.tz = ZoneInfo(self.settings.gateway.timezone)
        self.default_language: Language = self.settings.zoning.language
        self.sessions = Sessions()
        # One login limit for the network, one for the box itself (loopback): see security.py.
        self.guard = guard or LoginGuard()
        self.local_guard = self.guard.fresh()
        self.env = Environment(loader=PackageLoader("gateway.web", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.scan_state = ScanState()

    # -- sessions ---------------------------------------------------------------------------------

    def session_of(self, request: Request) -> Session:
        """The request's session (by its cookie) or a new one, kept in `request.state.session`."""
        found = self.sessions.get(request.cookies.get(COOKIE))
        if found is None:
            found = self.sessions.new(self.default_language)
        request.state.session = found
        return found

    def guard_for(self, request: Request) -> LoginGuard:
        """The login limit this request counts against: the box's own, or the network's."""
        return self.local_guard if _loopback(request) else self.guard

    def allowed(self, request: Request, s: Session) -> bool:
        """From the box itself (its kiosk screen) the patient's page is open; from the network only after
        the login (the listener is on the network only with `[web] lan = true`)."""
        return s.technician or _loopback(request)

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        """A page from `template`, in the session's language, with its CSRF token."""
        s: Session = request.state.session
        lang = s.language
        html = self.env.get_template(template).render(
            lang=lang, t=lambda key: ui(key, lang), csrf=s.csrf, technician=s.technician, **values)
        return HTMLResponse(html, status_code=status)

    def view_for(self, s: Session) -> PatientView:
        """The patient's page as data, in the session's language."""
        p = self.gw.pipeline
        return patient_view(latest=self.live.latest, version=self.live.version, plan=p.plan, history=p.history,
                            waiting=p.unassigned, tz=self.tz, now=self.now(), language=s.language)


def pages_of(request: Request) -> Pages:
    """The app's `Pages` (a FastAPI dependency)."""
    pages: Pages = request.app.state.pages
    return pages


PagesDep = Annotated[Pages, Depends(pages_of)]
