"""The web application: the patient's page (/), the technician's page (/service), and the JSON API
behind both (/api/..., described at /api/openapi.json). Forms work without JavaScript; a small script
only swaps in the live part of the page when the gateway says something changed (long polling).

No patient data in URLs: every answer travels in a POST body. Every POST needs the session's CSRF
token. On the home network (`[web] lan = true`) every page and API call needs the technician login;
from the box itself (loopback) the patient's page is open, as on a kiosk screen.

`create_app` only assembles: the routes live in gateway/web/routers/ (one router per audience), what
they share in gateway/web/context.py, the session, access and CSRF checks they name in
gateway/web/deps.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.web.context import COOKIE, Pages, pages_of
from gateway.web.deps import EXCEPTION_HANDLERS
from gateway.web.live import LiveState
from gateway.web.middleware import HostCheck, SessionCookie
from gateway.web.ports import GatewayPort
from gateway.web.routers import api, login, patient, technician
from gateway.web.security import LoginGuard
from gateway.web.texts import ui

STATIC = Path(__file__).parent / "static"


async def http_error(request: Request, exc: Exception) -> Response:
    """An unknown page gets a page in the session's language; anything else (and the API) JSON."""
    assert isinstance(exc, StarletteHTTPException)
    pages = pages_of(request)
    pages.session_of(request)
    if request.url.path.startswith("/api/") or exc.status_code != 404:
        detail = "no such page" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code)
    return pages.render(request, "message.html", 404, message=ui("not_found", request.state.session.language))


async def invalid(request: Request, exc: Exception) -> Response:
    """A request that does not validate: 400 with the first problem (field and message, never its value)."""
    assert isinstance(exc, RequestValidationError)
    pages = pages_of(request)
    pages.session_of(request)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
    where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "form"))
    return JSONResponse({"detail": f"bad request: {where}: {first.get('msg')}"}, status_code=400)


def create_app(gw: GatewayPort, live: LiveState, *, now: Callable[[], datetime] = lambda: datetime.now(UTC),
               guard: LoginGuard | None = None) -> FastAPI:
    """The pages' application for `gw`: routers, static files, the session cookie and the answers to
    errors and refusals, assembled."""
    app = FastAPI(title="dho-gateway pages", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="What the patient's and the technician's pages show, for a kiosk or a tablet app.")
    app.state.pages = Pages(gw, live, now=now, guard=guard)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SessionCookie, cookie=COOKIE)
    app.add_middleware(HostCheck, allowed=gw.settings.web.allowed_hosts)  # outermost: checked first
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    for refusal, answer in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(refusal, answer)
    for routes in (patient.router, api.router, technician.router, login.router):
        app.include_router(routes)
    return app
