"""The web application: the patient's page (/), the technician's page (/service), and the JSON API
behind both (/api/..., described at /api/openapi.json). Forms work without JavaScript; a small script
only swaps in the live part of the page when the gateway says something changed (long polling).

No patient data in URLs: every answer travels in a POST body. Every POST needs the session's CSRF
token. On the home network (`[web] lan = true`) every page and API call needs the technician login;
from the box itself (loopback) the patient's page is open, as on a kiosk screen.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Form, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.storage import OutboxUnavailable
from gateway.web.live import LiveState
from gateway.web.ports import GatewayPort
from gateway.web.security import LoginGuard, Session, Sessions, csrf_ok, verify_password
from gateway.web.technician import ScanState, ServiceView, service_view, service_view_text
from gateway.web.texts import ZONE_WORDS, pick, ui
from gateway.web.view import PatientView, patient_view
from zoning import QUESTIONS, Answers, Language

log = logging.getLogger(__name__)

COOKIE = "dho_session"
LONG_POLL_S = 20.0
STATIC = Path(__file__).parent / "static"


# -- JSON API models ------------------------------------------------------------------------------

class AnswersIn(BaseModel):
    answers: dict[str, str]


class AnswerResult(BaseModel):
    id: str
    zone: str
    zone_word: str
    advice: list[str]


class Done(BaseModel):
    ok: bool
    detail: str


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an IP address: not known to be this box
        return False


def create_app(gw: GatewayPort, live: LiveState, *, now: Callable[[], datetime] = lambda: datetime.now(UTC),
               guard: LoginGuard | None = None) -> FastAPI:
    settings = gw.settings
    tz = ZoneInfo(settings.gateway.timezone)
    default_language: Language = settings.zoning.language
    sessions = Sessions()
    guard = guard or LoginGuard()
    env = Environment(loader=PackageLoader("gateway.web", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    scan_state = ScanState()

    app = FastAPI(title="dho-gateway pages", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="What the patient's and the technician's pages show, for a kiosk or a tablet app.")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- sessions ---------------------------------------------------------------------------------

    def session_of(request: Request) -> Session:
        found = sessions.get(request.cookies.get(COOKIE))
        if found is None:
            found = sessions.new(default_language)
        request.state.session = found
        return found

    def finish(request: Request, response: Response) -> Response:
        s: Session = request.state.session
        if request.cookies.get(COOKIE) != s.id:
            response.set_cookie(COOKIE, s.id, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    def allowed(request: Request, s: Session) -> bool:
        """From the box itself (its kiosk screen) the patient's page is open; from the network only after
        the login (the listener is on the network only with `[web] lan = true`)."""
        return s.technician or _loopback(request)

    def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
        s: Session = request.state.session
        lang = s.language
        html = env.get_template(template).render(
            lang=lang, t=lambda key: ui(key, lang), csrf=s.csrf, technician=s.technician, **values)
        return finish(request, HTMLResponse(html, status_code=status))

    def refused(request: Request, api: bool) -> Response:
        if api:
            return finish(request, JSONResponse({"detail": "login needed"}, status_code=401))
        return render(request, "login.html", 401, error=ui("login_needed", request.state.session.language),
                      retry_after=None, configured=bool(settings.web.technician_password_hash))

    def bad_csrf(request: Request, api: bool) -> Response:
        log.warning("web: a request without a valid CSRF token was refused (%s)", request.url.path)
        text = ui("forbidden_csrf", request.state.session.language)
        if api:
            return finish(request, JSONResponse({"detail": text}, status_code=403))
        return render(request, "message.html", 403, message=text)

    def view_for(s: Session) -> PatientView:
        p = gw.pipeline
        return patient_view(latest=live.latest, version=live.version, plan=p.plan, history=p.history,
                            waiting=p.unassigned, tz=tz, now=now(), language=s.language)

    # -- errors -----------------------------------------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        session_of(request)
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            detail = "no such page" if exc.status_code == 404 else str(exc.detail)
            return finish(request, JSONResponse({"detail": detail}, status_code=exc.status_code))
        return render(request, "message.html", 404, message=ui("not_found", request.state.session.language))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        session_of(request)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "form"))
        return finish(request, JSONResponse({"detail": f"bad request: {where}: {first.get('msg')}"}, status_code=400))

    # -- the patient's page -----------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def patient_page(request: Request) -> Response:
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=False)
        saved = request.cookies.get("dho_saved")
        response = render(request, "patient.html", view=view_for(s), saved=saved)
        if saved:
            response.delete_cookie("dho_saved", path="/")
        return response

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    async def live_part(request: Request) -> Response:
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=True)
        return render(request, "live.html", view=view_for(s))

    @app.get("/api/patient", response_model=PatientView, tags=["patient"])
    async def api_patient(request: Request) -> Response:
        """Everything the patient's page shows, in the session's language."""
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=True)
        return finish(request, JSONResponse(view_for(s).model_dump(mode="json")))

    @app.get("/api/changes", tags=["patient"])
    async def api_changes(request: Request, since: int = -1) -> Response:
        """Waits (up to 20 s) until the page's state differs from version `since`; returns the version."""
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=True)
        version = await live.wait_change(since, LONG_POLL_S)
        return finish(request, JSONResponse({"version": version}))

    @app.post("/language", include_in_schema=False)
    async def language(request: Request, language: Annotated[Literal["nb", "en"], Form()],
                       csrf: Annotated[str, Form()] = "",
                       back: Annotated[Literal["/", "/service"], Form()] = "/") -> Response:
        s = session_of(request)
        if not csrf_ok(s, csrf):
            return bad_csrf(request, api=False)
        s.language = language
        return finish(request, RedirectResponse(back, status_code=303))

    async def answer_unassigned(record_id: str, yes: bool) -> tuple[int, str]:
        try:
            if yes:
                await gw.pipeline.confirm_unassigned(record_id)
            else:
                await gw.pipeline.reject_unassigned(record_id)
        except KeyError:
            return 404, "no such weighing waits for an answer (answered already?)"
        except OutboxUnavailable as exc:
            log.error("web: an answer to 'was this you?' could not be stored: %s", exc)
            return 503, "could not be stored just now; the question stays, try again shortly"
        return 200, "confirmed: stored as your reading" if yes else "discarded: not your reading"

    @app.post("/unassigned", include_in_schema=False)
    async def unassigned_form(request: Request, id: Annotated[str, Form(max_length=64)],
                              answer: Annotated[Literal["yes", "no"], Form()],
                              csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=False)
        if not csrf_ok(s, csrf):
            return bad_csrf(request, api=False)
        status, _detail = await answer_unassigned(id, answer == "yes")
        if status == 503:
            return render(request, "message.html", 503, message=ui("not_saved", s.language))
        return finish(request, RedirectResponse("/", status_code=303))

    @app.post("/api/unassigned/{record_id}/{answer}", response_model=Done, tags=["patient"])
    async def api_unassigned(request: Request, record_id: str, answer: Literal["confirm", "reject"],
                             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
        """The patient's answer to "was this you?": `confirm` stores the weighing as the patient's
        reading (it then goes to the central service), `reject` discards it. Needs the X-CSRF-Token header."""
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=True)
        if not csrf_ok(s, x_csrf_token):
            return bad_csrf(request, api=True)
        status, detail = await answer_unassigned(record_id, answer == "confirm")
        return finish(request, JSONResponse(Done(ok=status == 200, detail=detail).model_dump(), status_code=status))

    async def store_answers(answers: dict[str, str]) -> tuple[int, AnswerResult | str]:
        try:
            parsed = Answers(answered=now(), answers={q: a for q, a in answers.items() if a})
        except ValidationError as exc:
            return 400, f"bad answers: {exc.errors()[0]['msg']}"
        if not parsed.answers:
            return 400, "no question answered"
        try:
            record_id, assessment = await gw.pipeline.on_answers(parsed)
        except OutboxUnavailable as exc:
            log.error("web: questionnaire answers could not be stored: %s", exc)
            return 503, "could not be stored just now; try again shortly"
        return 200, AnswerResult(id=record_id, zone=assessment.zone.value, zone_word=assessment.zone.value,
                                 advice=list(assessment.advice_keys))

    @app.post("/questionnaire", include_in_schema=False)
    async def questionnaire_form(request: Request) -> Response:
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=False)
        form = await request.form()
        if not csrf_ok(s, str(form.get("csrf", ""))):
            return bad_csrf(request, api=False)
        status, _result = await store_answers({q: str(form.get(q, "")) for q in QUESTIONS})
        if status == 400:
            return render(request, "message.html", 400, message=ui("answers_missing", s.language))
        if status != 200:
            return render(request, "message.html", status, message=ui("not_saved", s.language))
        response = RedirectResponse("/#cards", status_code=303)
        response.set_cookie("dho_saved", "1", max_age=30, httponly=True, samesite="strict", path="/")
        return finish(request, response)

    @app.post("/api/questionnaire", response_model=AnswerResult, tags=["patient"])
    async def api_questionnaire(request: Request, body: AnswersIn,
                                x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
        """The day's questionnaire answers (question -> answer, see zoning/questionnaire.py): judged by the
        plan in force, stored sealed and sent to the central service as a `questionnaire` reading."""
        s = session_of(request)
        if not allowed(request, s):
            return refused(request, api=True)
        if not csrf_ok(s, x_csrf_token):
            return bad_csrf(request, api=True)
        status, result = await store_answers(body.answers)
        if isinstance(result, str):
            return finish(request, JSONResponse({"detail": result}, status_code=status))
        result = result.model_copy(update={"zone_word": pick(ZONE_WORDS[result.zone], s.language)})
        return finish(request, JSONResponse(result.model_dump()))

    # -- the technician's page --------------------------------------------------------------------

    @app.get("/service", response_class=HTMLResponse, include_in_schema=False)
    async def service_page(request: Request) -> Response:
        s = session_of(request)
        if not s.technician:
            return render(request, "login.html", 401, error=None, retry_after=None,
                          configured=bool(settings.web.technician_password_hash))
        return render(request, "service.html", view=service_view_text(await service_view(gw, live, scan_state),
                                                                        s.language, tz))

    @app.get("/api/service", response_model=ServiceView, tags=["technician"])
    async def api_service(request: Request) -> Response:
        """Devices, outbox, broker, plan in force and faults. Needs the technician login."""
        s = session_of(request)
        if not s.technician:
            return refused(request, api=True)
        return finish(request, JSONResponse((await service_view(gw, live, scan_state)).model_dump(mode="json")))

    @app.post("/service/login", include_in_schema=False)
    async def login(request: Request, password: Annotated[str, Form(max_length=256)] = "",
                    csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not csrf_ok(s, csrf):
            return bad_csrf(request, api=False)
        configured = settings.web.technician_password_hash
        if not configured:
            return render(request, "login.html", 503, configured=False, retry_after=None,
                          error="no technician password is configured: set [web] technician_password_hash")
        wait = guard.retry_after_s()
        if wait > 0:
            log.warning("web: technician login refused: too many wrong passwords (retry in %.0f s)", wait)
            response = render(request, "login.html", 429, configured=True, retry_after=int(wait) + 1, error=None)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not await asyncio.to_thread(verify_password, password, configured):
            guard.failed()
            log.warning("web: wrong technician password")
            return render(request, "login.html", 401, configured=True, retry_after=None, error="wrong password")
        guard.succeeded()
        request.state.session = sessions.promote(s)
        log.info("web: technician logged in")
        return finish(request, RedirectResponse("/service", status_code=303))

    @app.post("/service/logout", include_in_schema=False)
    async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not csrf_ok(s, csrf):
            return bad_csrf(request, api=False)
        sessions.end(s)
        request.state.session = sessions.new(s.language)
        return finish(request, RedirectResponse("/service", status_code=303))

    @app.post("/service/scan", include_in_schema=False)
    async def scan(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        s = session_of(request)
        if not s.technician:
            return refused(request, api=False)
        if not csrf_ok(s, csrf):
            return bad_csrf(request, api=False)
        await start_scan()
        return finish(request, RedirectResponse("/service#nearby", status_code=303))

    async def start_scan() -> None:
        scan_state.at = now()
        if gw.source.scans_on_request:
            await gw.source.scan()
            scan_state.note = "scan done: what the device source heard"
        else:
            scan_state.note = ("this device source scans all the time and pairs provisioned devices when they "
                                  "advertise; below is what it has heard")
        log.info("web: pairing scan requested by the technician")

    return app
