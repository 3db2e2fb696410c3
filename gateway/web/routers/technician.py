"""The technician's page (/service) and its pairing-scan button; both need the technician login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.web.actions import start_scan
from gateway.web.context import PagesDep
from gateway.web.security import csrf_ok
from gateway.web.technician import service_view, service_view_text

router = APIRouter(include_in_schema=False)


@router.get("/service", response_class=HTMLResponse)
async def service_page(request: Request, pages: PagesDep) -> Response:
    s = pages.session_of(request)
    if not s.technician:
        return pages.render(request, "login.html", 401, error=None, retry_after=None,
                            configured=bool(pages.settings.web.technician_password_hash))
    view = await service_view(pages.gw, pages.live, pages.scan_state)
    return pages.render(request, "service.html", view=service_view_text(view, s.language, pages.tz))


@router.post("/service/scan")
async def scan(request: Request, pages: PagesDep, csrf: Annotated[str, Form()] = "") -> Response:
    s = pages.session_of(request)
    if not s.technician:
        return pages.refused(request, api=False)
    if not csrf_ok(s, csrf):
        return pages.bad_csrf(request, api=False)
    await start_scan(pages)
    return pages.finish(request, RedirectResponse("/service#nearby", status_code=303))
