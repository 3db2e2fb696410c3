"""The worklist's pages: login, the tenant's list (red, then yellow, then the rest; oldest first), one
alert with the readings behind it and the patient's last 14 days, the actions, the audit trail.

Forms work without JavaScript; a small script follows the list live (long polling on
`/api/changes`) and swaps in the new rows. Every POST needs the session's CSRF token. Every query is
scoped to the user's tenant: another tenant's alert id answers 404, and the attempt is audited. Alert
ids (UUIDs) are the only ids in URLs; patient pseudonyms appear on pages, never in URLs or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from central.worklist.hours import TenantHours
from central.worklist.security import LoginGuard, ProxySignOn, Session, Sessions, csrf_ok, verify_password
from central.worklist.store import AlertRow, Conflict, NotAllowed, User, Worklist
from central.worklist.texts import WEEKDAYS, text

log = logging.getLogger(__name__)

COOKIE = "dho_worklist"
LONG_POLL_S = 20.0
POLL_EVERY_S = 0.5
STATIC = Path(__file__).parent / "static"
_ALERT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
KINDS = ("reading", "overdue", "silent", "refused", "outbox", "fault", "battery", "plan_rejected", "clock",
         "device_urgent")


def since(then: datetime, now: datetime, language: str) -> str:
    """How long ago, in the largest whole unit: "5 min", "3 t", "2 d"."""
    minutes = max(0, int((now - then).total_seconds() // 60))
    if minutes < 120:
        return text("ago_m", language, n=minutes)
    if minutes < 48 * 60:
        return text("ago_h", language, n=minutes // 60)
    return text("ago_d", language, n=minutes // (24 * 60))


class _Pages:
    """The pages' state (sessions, login limits, templates) and their handlers, one small method each."""

    def __init__(self, worklist: Worklist, hours: TenantHours, now: Callable[[], datetime], guard: LoginGuard,
                 language: str, sign_on: ProxySignOn | None) -> None:
        self.worklist, self.hours, self.now, self.guard, self.language = worklist, hours, now, guard, language
        self.sign_on = sign_on
        self.sessions = Sessions()
        self.env = Environment(loader=PackageLoader("central.worklist", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.closing = asyncio.Event()  # set when the server stops: waiting pages are answered at once

    # -- helpers --------------------------------------------------------------------------------------

    def session_of(self, request: Request) -> Session:
        found = self.sessions.get(request.cookies.get(COOKIE)) or self.sessions.new(self.language)
        request.state.session = found
        return found

    def finish(self, request: Request, response: Response) -> Response:
        s: Session = request.state.session
        if request.cookies.get(COOKIE) != s.id:
            response.set_cookie(COOKIE, s.id, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    async def user_of(self, request: Request) -> User | None:
        s = self.session_of(request)
        if self.sign_on is not None:
            signed_on = self.sign_on.name_of(request.client.host if request.client else None, request.headers)
            if signed_on is not None and signed_on != s.user:
                return await self.signed_on(request, s, signed_on)
        if s.user is None:
            return None
        found = await asyncio.to_thread(self.worklist.user, s.user)
        if found is None:  # disabled or removed since the login
            self.sessions.end(s)
        return found

    async def signed_on(self, request: Request, s: Session, name: str) -> User | None:
        """The proxy says who this is: bind the session to that user (a new session id and CSRF token)."""
        found = await asyncio.to_thread(self.worklist.user, name)
        if found is None:
            log.warning("worklist: the sign-on proxy named a user who is not in the users table")
            return None
        request.state.session = self.sessions.login(s, found.name)
        await asyncio.to_thread(self.worklist.audit, found.tenant, found.name, "login", "", "single sign-on")
        return found

    def render(self, request: Request, template: str, status: int = 200, user: User | None = None,
               **values: Any) -> Response:
        s: Session = request.state.session
        lang = s.language
        tz = ZoneInfo(self.hours.of(user.tenant).timezone if user else "Europe/Oslo")
        html = self.env.get_template(template).render(
            lang=lang, t=lambda key, **kw: text(key, lang, **kw), csrf=s.csrf, user=user, now=self.now(),
            local=lambda when: when.astimezone(tz).strftime("%d.%m.%Y %H:%M"),
            ago=lambda when: since(when, self.now(), lang), **values)
        return self.finish(request, HTMLResponse(html, status_code=status))

    def message(self, request: Request, status: int, key: str, user: User | None = None, **values: Any) -> Response:
        words = text(key, request.state.session.language, **values)
        return self.render(request, "message.html", status, user=user, message=words)

    def to_login(self, request: Request, api: bool) -> Response:
        if api:
            return self.finish(request, JSONResponse({"detail": "login needed"}, status_code=401))
        return self.finish(request, RedirectResponse("/login", status_code=303))

    def bad_csrf(self, request: Request) -> Response:
        log.warning("worklist: a form without a valid CSRF token was refused (%s)", request.url.path)
        return self.message(request, 403, "forbidden_csrf")

    def hours_view(self, user: User, rows: list[AlertRow], lang: str) -> dict[str, Any]:
        h = self.hours.of(user.tenant)
        at = self.now()
        opens = h.next_opening(at)
        day = WEEKDAYS["en" if lang == "en" else "nb"][opens.weekday()]
        return {"service_open": h.is_open(at), "hours_text": h.describe(), "opens": f"{day} {opens:%d.%m %H:%M}",
                "outside": {r.id for r in rows if not h.is_open(r.opened_at)}}

    async def list_values(self, user: User, kind: str | None, mine: bool, lang: str) -> dict[str, Any]:
        known = kind if kind in KINDS else None
        rows = await asyncio.to_thread(self.worklist.alerts, user.tenant, kind=known,
                                       assignee=user.name if mine else None)
        mark = await asyncio.to_thread(self.worklist.change_mark, user.tenant)
        return {"rows": rows, "mark": mark, "kind": known or "", "mine": mine, "kinds": KINDS,
                **self.hours_view(user, rows, lang)}

    async def not_theirs(self, request: Request, user: User, alert_id: str) -> Response:
        """404 for an alert this user's tenant does not have; audited, in the other tenant's trail too."""
        wl = self.worklist
        other = None
        if _ALERT_ID.match(alert_id):
            other = await asyncio.to_thread(wl.exists_elsewhere, user.tenant, alert_id)
        await asyncio.to_thread(wl.audit, user.tenant, user.name, "refused_access", alert_id[:100],
                                "another tenant's alert" if other else "no such alert")
        if other:
            await asyncio.to_thread(wl.audit, other, f"{user.name} ({user.tenant})", "refused_access",
                                    alert_id, "a user of another tenant asked for this alert")
            log.warning("worklist: a user was refused another tenant's alert (audited)")
        return self.message(request, 404, "not_found", user=user)

    # -- errors ---------------------------------------------------------------------------------------

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        self.session_of(request)
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            return self.finish(request, JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code))
        return self.message(request, 404, "not_found")

    async def invalid(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        self.session_of(request)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "form"))
        return self.finish(request, JSONResponse({"detail": f"bad request: {where}: {first.get('msg')}"},
                                                 status_code=400))

    # -- login ----------------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        self.session_of(request)
        return self.render(request, "login.html", error=None)

    async def login(self, request: Request, name: Annotated[str, Form(max_length=64)],
                    password: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form()] = "") -> Response:
        s = self.session_of(request)
        if not csrf_ok(s, csrf):
            return self.bad_csrf(request)
        wait = self.guard.retry_after_s(name)
        if wait > 0:
            return self.render(request, "login.html", 429, error=text("login_locked", s.language, s=int(wait) + 1))
        found = await asyncio.to_thread(self.worklist.user, name)
        ok = await asyncio.to_thread(verify_password, password, found.password_hash if found else None)
        if not ok or found is None:
            self.guard.failed(name)
            log.warning("worklist: a failed login")
            return self.render(request, "login.html", 401, error=text("login_wrong", s.language))
        self.guard.succeeded(name)
        request.state.session = self.sessions.login(s, found.name)
        await asyncio.to_thread(self.worklist.audit, found.tenant, found.name, "login")
        return self.finish(request, RedirectResponse("/", status_code=303))

    async def logout(self, request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        s = self.session_of(request)
        if not csrf_ok(s, csrf):
            return self.bad_csrf(request)
        self.sessions.end(s)
        request.state.session = self.sessions.new(s.language)
        return self.finish(request, RedirectResponse("/login", status_code=303))

    async def set_language(self, request: Request, language: Annotated[Literal["nb", "en"], Form()],
                           csrf: Annotated[str, Form()] = "") -> Response:
        s = self.session_of(request)
        if not csrf_ok(s, csrf):
            return self.bad_csrf(request)
        s.language = language
        back = request.headers.get("referer") or "/"
        # Back to the same page of this site (the path only: never followed off the site).
        path = "/" + back.split("://", 1)[-1].split("/", 1)[-1] if "://" in back else "/"
        return self.finish(request, RedirectResponse(path if path.startswith("/") and not path.startswith("//")
                                                     else "/", status_code=303))

    # -- the list -------------------------------------------------------------------------------------

    async def worklist_page(self, request: Request, kind: str | None = None, mine: bool = False) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=False)
        values = await self.list_values(user, kind, mine, request.state.session.language)
        return self.render(request, "list.html", user=user, **values)

    async def list_part(self, request: Request, kind: str | None = None, mine: bool = False) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=True)
        values = await self.list_values(user, kind, mine, request.state.session.language)
        return self.render(request, "rows.html", user=user, **values)

    async def changes(self, request: Request, since: int = -1) -> Response:
        """Waits (up to 20 s) until the tenant's list differs from mark `since`; returns the mark."""
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LONG_POLL_S
        while True:
            mark = await asyncio.to_thread(self.worklist.change_mark, user.tenant)
            if mark != since or loop.time() >= deadline or self.closing.is_set() or await request.is_disconnected():
                return self.finish(request, JSONResponse({"mark": mark}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), POLL_EVERY_S)

    # -- one alert ------------------------------------------------------------------------------------

    async def alert_page(self, request: Request, alert_id: str) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=False)
        detail = await asyncio.to_thread(self.worklist.alert, user.tenant, alert_id) \
            if _ALERT_ID.match(alert_id) else None
        if detail is None:
            return await self.not_theirs(request, user, alert_id)
        await asyncio.to_thread(self.worklist.audit, user.tenant, user.name, "viewed", alert_id,
                                f"patient {detail.alert.patient}" if detail.alert.patient else "kit")
        return self.render(request, "alert.html", user=user, d=detail, a=detail.alert, conflict=False, problem=None)

    async def alert_action(
        self, request: Request, alert_id: str,
        action: Annotated[Literal["take", "note", "done", "escalate", "thresholds"], Form()],
        version: Annotated[int, Form(ge=1)], csrf: Annotated[str, Form()] = "",
        note: Annotated[str, Form(max_length=4000)] = "", to: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=False)
        if not csrf_ok(request.state.session, csrf):
            return self.bad_csrf(request)
        if not _ALERT_ID.match(alert_id):
            return await self.not_theirs(request, user, alert_id)
        try:
            await asyncio.to_thread(self.worklist.act, user, alert_id, action, version=version, text=note, to=to)
        except LookupError:
            return await self.not_theirs(request, user, alert_id)
        except Conflict as exc:
            return self.render(request, "alert.html", 409, user=user, d=exc.current, a=exc.current.alert,
                               conflict=True, problem=None)
        except NotAllowed as exc:
            detail = await asyncio.to_thread(self.worklist.alert, user.tenant, alert_id)
            if detail is None:
                return await self.not_theirs(request, user, alert_id)
            return self.render(request, "alert.html", 400, user=user, d=detail, a=detail.alert, conflict=False,
                               problem=str(exc))
        back = f"/alerts/{alert_id}" if action in ("note", "take", "thresholds") else "/"
        return self.finish(request, RedirectResponse(back, status_code=303))

    async def stopped_page(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=False)
        lines = await asyncio.to_thread(self.worklist.stopped, user.tenant, self.now())
        await asyncio.to_thread(self.worklist.audit, user.tenant, user.name, "stopped_list_viewed", "",
                                f"{len(lines)} patient(s)")
        return self.render(request, "stopped.html", user=user, lines=lines)

    # -- audit ----------------------------------------------------------------------------------------

    async def audit_page(self, request: Request) -> Response:
        user = await self.user_of(request)
        if user is None:
            return self.to_login(request, api=False)
        if user.role != "coordinator":
            return self.message(request, 403, "coordinator_only", user=user)
        lines = await asyncio.to_thread(self.worklist.audit_trail, user.tenant)
        return self.render(request, "audit.html", user=user, lines=lines)


def create_app(worklist: Worklist, *, hours: TenantHours | None = None,
               now: Callable[[], datetime] = lambda: datetime.now(UTC), guard: LoginGuard | None = None,
               language: str = "nb", sign_on: ProxySignOn | None = None) -> FastAPI:
    """The worklist's ASGI application over one database. `app.state.closing` is set by the server when it
    stops, so waiting long polls are answered at once. With `sign_on`, users may also be signed on by an
    authenticating (OIDC) proxy in front of it; local accounts keep working."""
    pages = _Pages(worklist, hours or TenantHours(), now, guard or LoginGuard(), language, sign_on)
    app = FastAPI(title="dho-central worklist", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.closing = pages.closing
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(StarletteHTTPException, pages.http_error)
    app.add_exception_handler(RequestValidationError, pages.invalid)
    html = HTMLResponse
    for path, handler, methods in (
        ("/login", pages.login_page, ["GET"]), ("/login", pages.login, ["POST"]),
        ("/logout", pages.logout, ["POST"]), ("/language", pages.set_language, ["POST"]),
        ("/", pages.worklist_page, ["GET"]), ("/list", pages.list_part, ["GET"]),
        ("/api/changes", pages.changes, ["GET"]),
        ("/alerts/{alert_id}", pages.alert_page, ["GET"]), ("/alerts/{alert_id}", pages.alert_action, ["POST"]),
        ("/audit", pages.audit_page, ["GET"]), ("/stopped", pages.stopped_page, ["GET"]),
    ):
        app.add_api_route(path, handler, methods=methods, response_class=html, include_in_schema=False)
    return app
