"""The technician's page (/service) and its pairing-scan button; both need the technician login
(a stranger gets the login form)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.web.actions import start_scan
from gateway.web.context import PagesDep
from gateway.web.deps import SessionDep, csrf_form, service_page_access, technician_page_access
from gateway.web.technician import service_view, service_view_text

router = APIRouter(include_in_schema=False)


@router.get("/service", response_class=HTMLResponse, dependencies=[service_page_access])
async def service_page(request: Request, pages: PagesDep, s: SessionDep) -> Response:
    """Devices, outbox, broker, plan in force, faults and what is nearby."""
    view = await service_view(pages.gw, pages.live, pages.scan_state)
    return pages.render(request, "service.html", view=service_view_text(view, s.language, pages.tz))


@router.post("/service/scan", dependencies=[technician_page_access, csrf_form])
async def scan(pages: PagesDep) -> Response:
    """The pairing-scan button."""
    await start_scan(pages)
    return RedirectResponse("/service#nearby", status_code=303)
