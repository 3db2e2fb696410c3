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
from central.worklist.security import LoginGuard, Session, Sessions, csrf_ok, verify_password
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


def create_app(worklist: Worklist, *, hours: TenantHours | None = None,
               now: Callable[[], datetime] = lambda: datetime.now(UTC), guard: LoginGuard | None = None,
               language: str = "nb") -> FastAPI:
    """The worklist's ASGI application over one database."""
    hours = hours or TenantHours()
    sessions = Sessions()
    guard = guard or LoginGuard()
    env = Environment(loader=PackageLoader("central.worklist", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    app = FastAPI(title="dho-central worklist", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    closing = asyncio.Event()  # set when the server stops: waiting pages are answered at once
    app.state.closing = closing
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def session_of(request: Request) -> Session:
        found = sessions.get(request.cookies.get(COOKIE)) or sessions.new(language)
        request.state.session = found
        return found

    def finish(request: Request, response: Response) -> Response:
        s: Session = request.state.session
        if request.cookies.get(COOKIE) != s.id:
            response.set_cookie(COOKIE, s.id, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    async def user_of(request: Request) -> User | None:
        s = session_of(request)
        if s.user is None:
            return None
        found = await asyncio.to_thread(worklist.user, s.user)
        if found is None:  # disabled or removed since the login
            sessions.end(s)
        return found

    def render(request: Request, template: str, status: int = 200, user: User | None = None, **values: Any) -> Response:
        s: Session = request.state.session
        lang = s.language
        tz = ZoneInfo(hours.of(user.tenant).timezone) if user else ZoneInfo("Europe/Oslo")
        html = env.get_template(template).render(
            lang=lang, t=lambda key, **kw: text(key, lang, **kw), csrf=s.csrf, user=user, now=now(),
            local=lambda when: when.astimezone(tz).strftime("%d.%m.%Y %H:%M"),
            ago=lambda when: since(when, now(), lang), **values)
        return finish(request, HTMLResponse(html, status_code=status))

    def message(request: Request, status: int, key: str, user: User | None = None, **values: Any) -> Response:
        return render(request, "message.html", status, user=user, message=text(key, request.state.session.language,
                                                                                   **values))

    def to_login(request: Request, api: bool) -> Response:
        if api:
            return finish(request, JSONResponse({"detail": "login needed"}, status_code=401))
        return finish(request, RedirectResponse("/login", status_code=303))

    def bad_csrf(request: Request) -> Response:
        log.warning("worklist: a form without a valid CSRF token was refused (%s)", request.url.path)
        return message(request, 403, "forbidden_csrf")

    def hours_view(user: User, rows: list[AlertRow], lang: str) -> dict[str, Any]:
        h = hours.of(user.tenant)
        at = now()
        opens = h.next_opening(at)
        day = WEEKDAYS["en" if lang == "en" else "nb"][opens.weekday()]
        return {"service_open": h.is_open(at), "hours_text": h.describe(),
                "opens": f"{day} {opens:%d.%m %H:%M}",
                "outside": {r.id for r in rows if not h.is_open(r.opened_at)}}

    # -- errors ---------------------------------------------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        session_of(request)
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            return finish(request, JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code))
        return message(request, 404, "not_found")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        session_of(request)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "form"))
        return finish(request, JSONResponse({"detail": f"bad request: {where}: {first.get('msg')}"}, status_code=400))

    # -- login ----------------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        session_of(request)
        return render(request, "login.html", error=None)

    @app.post("/login")
    async def login(request: Request, name: Annotated[str, Form(max_length=64)],
                    password: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not csrf_ok(s, csrf):
            return bad_csrf(request)
        wait = guard.retry_after_s(name)
        if wait > 0:
            return render(request, "login.html", 429, error=text("login_locked", s.language, s=int(wait) + 1))
        found = await asyncio.to_thread(worklist.user, name)
        if not await asyncio.to_thread(verify_password, password, found.password_hash if found else None) \
                or found is None:
            guard.failed(name)
            log.warning("worklist: a failed login")
            return render(request, "login.html", 401, error=text("login_wrong", s.language))
        guard.succeeded(name)
        request.state.session = sessions.login(s, found.name)
        await asyncio.to_thread(worklist.audit, found.tenant, found.name, "login")
        return finish(request, RedirectResponse("/", status_code=303))

    @app.post("/logout")
    async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not csrf_ok(s, csrf):
            return bad_csrf(request)
        sessions.end(s)
        request.state.session = sessions.new(s.language)
        return finish(request, RedirectResponse("/login", status_code=303))

    @app.post("/language")
    async def set_language(request: Request, language: Annotated[Literal["nb", "en"], Form()],
                           csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not csrf_ok(s, csrf):
            return bad_csrf(request)
        s.language = language
        back = request.headers.get("referer") or "/"  # never followed off this site
        return finish(request, RedirectResponse(back if back.startswith("/") else "/", status_code=303))

    # -- the list -------------------------------------------------------------------------------------

    async def list_values(user: User, kind: str | None, mine: bool, lang: str) -> dict[str, Any]:
        rows = await asyncio.to_thread(worklist.alerts, user.tenant, kind=kind if kind in KINDS else None,
                                       assignee=user.name if mine else None)
        mark = await asyncio.to_thread(worklist.change_mark, user.tenant)
        return {"rows": rows, "mark": mark, "kind": kind if kind in KINDS else "", "mine": mine, "kinds": KINDS,
                **hours_view(user, rows, lang)}

    @app.get("/", response_class=HTMLResponse)
    async def worklist_page(request: Request, kind: str | None = None, mine: bool = False) -> Response:
        user = await user_of(request)
        if user is None:
            return to_login(request, api=False)
        return render(request, "list.html", user=user,
                      **await list_values(user, kind, mine, request.state.session.language))

    @app.get("/list", response_class=HTMLResponse)
    async def list_part(request: Request, kind: str | None = None, mine: bool = False) -> Response:
        user = await user_of(request)
        if user is None:
            return to_login(request, api=True)
        return render(request, "rows.html", user=user,
                      **await list_values(user, kind, mine, request.state.session.language))

    @app.get("/api/changes")
    async def changes(request: Request, since: int = -1) -> Response:
        """Waits (up to 20 s) until the tenant's list differs from mark `since`; returns the mark."""
        user = await user_of(request)
        if user is None:
            return to_login(request, api=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LONG_POLL_S
        while True:
            mark = await asyncio.to_thread(worklist.change_mark, user.tenant)
            if mark != since or loop.time() >= deadline or closing.is_set() or await request.is_disconnected():
                return finish(request, JSONResponse({"mark": mark}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), POLL_EVERY_S)

    # -- one alert ------------------------------------------------------------------------------------

    async def not_theirs(request: Request, user: User, alert_id: str) -> Response:
        other = await asyncio.to_thread(worklist.exists_elsewhere, user.tenant, alert_id) \
            if _ALERT_ID.match(alert_id) else None
        await asyncio.to_thread(worklist.audit, user.tenant, user.name, "refused_access", alert_id[:100],
                                "another tenant's alert" if other else "no such alert")
        if other:
            await asyncio.to_thread(worklist.audit, other, f"{user.name} ({user.tenant})", "refused_access",
                                    alert_id, "a user of another tenant asked for this alert")
            log.warning("worklist: a user was refused another tenant's alert (audited)")
        return message(request, 404, "not_found", user=user)

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse)
    async def alert_page(request: Request, alert_id: str) -> Response:
        user = await user_of(request)
        if user is None:
            return to_login(request, api=False)
        detail = await asyncio.to_thread(worklist.alert, user.tenant, alert_id) if _ALERT_ID.match(alert_id) else None
        if detail is None:
            return await not_theirs(request, user, alert_id)
        await asyncio.to_thread(worklist.audit, user.tenant, user.name, "viewed", alert_id,
                                f"patient {detail.alert.patient}" if detail.alert.patient else "kit")
        return render(request, "alert.html", user=user, d=detail, a=detail.alert, conflict=False, problem=None)

    @app.post("/alerts/{alert_id}", response_class=HTMLResponse)
    async def alert_action(
        request: Request, alert_id: str,
        action: Annotated[Literal["take", "note", "done", "escalate", "thresholds"], Form()],
        version: Annotated[int, Form(ge=1)], csrf: Annotated[str, Form()] = "",
        note: Annotated[str, Form(max_length=4000)] = "", to: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        user = await user_of(request)
        if user is None:
            return to_login(request, api=False)
        if not csrf_ok(request.state.session, csrf):
            return bad_csrf(request)
        if not _ALERT_ID.match(alert_id):
            return await not_theirs(request, user, alert_id)
        try:
            await asyncio.to_thread(worklist.act, user, alert_id, action, version=version, text=note, to=to)
        except LookupError:
            return await not_theirs(request, user, alert_id)
        except Conflict as exc:
            return render(request, "alert.html", 409, user=user, d=exc.current, a=exc.current.alert, conflict=True,
                          problem=None)
        except NotAllowed as exc:
            detail = await asyncio.to_thread(worklist.alert, user.tenant, alert_id)
            if detail is None:
                return await not_theirs(request, user, alert_id)
            return render(request, "alert.html", 400, user=user, d=detail, a=detail.alert, conflict=False,
                          problem=str(exc))
        return finish(request, RedirectResponse(f"/alerts/{alert_id}" if action in ("note", "take") else "/",
                                                status_code=303))

    # -- audit ----------------------------------------------------------------------------------------

    @app.get("/audit", response_class=HTMLResponse)
    async def audit_page(request: Request) -> Response:
        user = await user_of(request)
        if user is None:
            return to_login(request, api=False)
        if user.role != "coordinator":
            return message(request, 403, "coordinator_only", user=user)
        lines = await asyncio.to_thread(worklist.audit_trail, user.tenant)
        return render(request, "audit.html", user=user, lines=lines)

    return app
