"""The read-only FHIR API: Observation search and read, Device read, the CapabilityStatement.

Every request but `/metadata` carries an access token (central/fhir/auth.py) naming the caller's tenant;
every query is scoped by it, so one municipality never sees another's readings, even under the same
pseudonym. Links are built from the configured public base URL, never from the Host header. Every error
is an OperationOutcome. The access log names the route, the status and the tenant, never a pseudonym.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from central.fhir.auth import AuthError, Caller, TokenValidator
from central.fhir.bulk import EXPORT_TYPES, NDJSON, OUTPUT_FORMATS, BulkExports, manifest
from central.fhir.capability import capability_statement
from central.fhir.mapping import patient_id, resource_json, served_json
from central.fhir.search import Cursor, ObservationSearch, SearchError, date_bounds, parse_observation_search
from central.store import (
    Database,
    ObservationQuery,
    device_by_id,
    observation_by_id,
    patients_of_tenant,
    search_observations,
)

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("central.fhir.access")


@dataclass(frozen=True)
class ApiSettings:
    base_url: str  # the public URL of the FHIR base, e.g. https://dho.example.no/fhir (links and DPoP htu)
    validator: TokenValidator
    export_dir: Path | None = None  # where $export writes its files (default: a new temporary folder)

    @property
    def base(self) -> str:
        return self.base_url.rstrip("/")


def outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An OperationOutcome with one issue (FHIR's error body)."""
    severity = "error" if status < 500 else "fatal"
    return JSONResponse(
        {"resourceType": "OperationOutcome",
         "issue": [{"severity": severity, "code": code, "diagnostics": text}]},
        status_code=status, media_type=FHIR_JSON, headers=headers,
    )


def _fhir(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type=FHIR_JSON)


def _prefers(request: Request, token: str) -> bool:
    return any(part.strip().lower() == token for part in request.headers.get("prefer", "").split(","))


class _Handlers:
    def __init__(self, database: Database, settings: ApiSettings) -> None:
        self.database = database
        self.settings = settings

    async def caller(self, request: Request, resource_type: str, action: str) -> Caller:
        url = self.settings.base + request.url.path.removeprefix("/fhir")
        caller = await asyncio.to_thread(
            self.settings.validator.authenticate, request.method, url,
            request.headers.get("authorization"), request.headers.get("dpop"),
        )
        request.state.tenant = caller.tenant
        if action and not caller.may(resource_type, action):
            raise AuthError(403, f"the token's scopes do not allow {'reading' if action == 'r' else 'searching'} "
                                 f"{resource_type} (system/{resource_type}.{'read' if action == 'r' else 'rs'})")
        return caller

    async def search(self, request: Request) -> Response:
        caller = await self.caller(request, "Observation", "s")
        parsed = parse_observation_search(list(request.query_params.multi_items()), caller.tenant,
                                          strict=_prefers(request, "handling=strict"))
        search = parsed.search
        query = await asyncio.to_thread(self._query, search)
        total, page = await asyncio.to_thread(search_observations, self.database, query)
        base = self.settings.base
        this_page = [*parsed.kept, ("_cursor", parsed.cursor)] if parsed.cursor else parsed.kept
        links = [{"relation": "self", "url": f"{base}/Observation?{urlencode(this_page)}"}]
        if search.count and len(page) > search.count:
            page = page[:search.count]
            last = page[-1]
            assert last.effective is not None
            cursor = Cursor(last.effective, last.id, search.descending).encode()
            query_string = urlencode([*parsed.kept, ("_cursor", cursor)])
            links.append({"relation": "next", "url": f"{base}/Observation?{query_string}"})
        bundle = resource_json({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links})
        if page:  # the stored text spliced in as it is: no parse and re-serialisation per resource
            entries = ", ".join(
                f'{{"fullUrl": {json.dumps(f"{base}/Observation/{s.id}")}, '
                f'"resource": {served_json(s.resource, s.last_updated)}, "search": {{"mode": "match"}}}}'
                for s in page
            )
            bundle = f'{bundle[:-1]}, "entry": [{entries}]}}'
        return _fhir(bundle)

    def _query(self, search: ObservationSearch) -> ObservationQuery:
        patients = []
        for values in search.patients:
            if any(v.startswith("sha256-") for v in values):  # a Patient id that is a digest: find whose
                values = values | {p for p in patients_of_tenant(self.database, search.tenant)
                                   if patient_id(search.tenant, p) in values}
            patients.append(frozenset(values))
        cursor = search.cursor
        return ObservationQuery(
            tenant=search.tenant, patients=patients, codes=[frozenset(c) for c in search.codes],
            identifiers=[frozenset(i) for i in search.identifiers], dates=search.dates,
            last_updated=search.last_updated, limit=search.count + 1 if search.count else 0,
            descending=search.descending, after=(cursor.effective, cursor.id) if cursor else None,
        )

    async def read(self, request: Request, resource_type: str, resource_id: str) -> Response:
        caller = await self.caller(request, resource_type, "r")
        find = observation_by_id if resource_type == "Observation" else device_by_id
        found = await asyncio.to_thread(find, self.database, caller.tenant, resource_id)
        if found is None:
            return outcome(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return _fhir(served_json(found.resource, found.last_updated))


def _export_request(request: Request, caller: Caller) -> tuple[tuple[str, ...], datetime | None]:
    """A kick-off's `_type`, `_since` and `_outputFormat`, or why it is refused."""
    if not _prefers(request, "respond-async"):
        raise SearchError("$export runs asynchronously: send `Prefer: respond-async`")
    params = dict(request.query_params)
    unknown = set(params) - {"_type", "_since", "_outputFormat"}
    if unknown and _prefers(request, "handling=strict"):
        raise SearchError(f"$export does not support {', '.join(sorted(unknown))}", "not-supported")
    if params.get("_outputFormat", NDJSON) not in OUTPUT_FORMATS:
        raise SearchError(f"_outputFormat={params['_outputFormat']}: only {NDJSON}", "not-supported")
    if "_type" in params:
        types = tuple(dict.fromkeys(t.strip() for t in params["_type"].split(",")))
        others = [t for t in types if t not in EXPORT_TYPES]
        if others:
            raise SearchError(f"_type: {', '.join(others)} not exported here ({', '.join(EXPORT_TYPES)})",
                              "not-supported")
        refused = [t for t in types if not caller.may(t, "r")]
        if refused:
            raise AuthError(403, f"the token's scopes do not allow reading {', '.join(refused)}")
    else:
        types = tuple(t for t in EXPORT_TYPES if caller.may(t, "r"))
        if not types:
            raise AuthError(403, "the token's scopes allow reading no resource type this server exports")
    since = date_bounds("_since", ["ge" + params["_since"]])[0][1] if "_since" in params else None
    return types, since


class _Exports:
    def __init__(self, handlers: _Handlers, directory: Path) -> None:
        self.handlers = handlers
        self.jobs = BulkExports(handlers.database, directory)

    async def kick_off(self, request: Request) -> Response:
        caller = await self.handlers.caller(request, "*", "")
        types, since = _export_request(request, caller)
        base = self.handlers.settings.base
        query = f"?{request.url.query}" if request.url.query else ""
        job = self.jobs.start(caller.tenant, types, since, f"{base}/$export{query}")
        return Response(status_code=202, headers={"Content-Location": f"{base}/$export-status/{job.id}"})

    async def status(self, request: Request, job_id: str) -> Response:
        caller = await self.handlers.caller(request, "*", "")
        job = self.jobs.get(caller.tenant, job_id)
        if job is None:
            return outcome(404, "not-found", f"no export {job_id}")
        if job.state == "failed":
            return outcome(500, "exception", f"the export failed ({job.error})")
        if job.state != "done":
            return Response(status_code=202, headers={"X-Progress": job.progress, "Retry-After": "2"})
        return JSONResponse(manifest(job, self.handlers.settings.base), headers={"Expires": "never"})

    async def cancel(self, request: Request, job_id: str) -> Response:
        caller = await self.handlers.caller(request, "*", "")
        if not await asyncio.to_thread(self.jobs.cancel, caller.tenant, job_id):
            return outcome(404, "not-found", f"no export {job_id}")
        return Response(status_code=202)

    async def file(self, request: Request, job_id: str, name: str) -> Response:
        caller = await self.handlers.caller(request, "*", "")
        path = self.jobs.file(caller.tenant, job_id, name)
        if path is None:
            return outcome(404, "not-found", f"no file {name} in export {job_id}")
        return FileResponse(path, media_type=NDJSON)


def _crashed(exc: Exception) -> Response:
    # The exception's text may quote SQL parameters (pseudonyms): its type at ERROR, the rest at DEBUG.
    log.error("internal error: %s", type(exc).__name__)
    log.debug("internal error", exc_info=exc)
    return outcome(500, "exception", "internal error; the server log has its type")


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    async def auth_error(_request: Request, exc: AuthError) -> Response:
        if exc.status == 503:
            return outcome(503, "transient", str(exc), {"Retry-After": "10"})
        code = "login" if exc.status == 401 else "forbidden"
        return outcome(exc.status, code, str(exc), {"WWW-Authenticate": exc.challenge})

    @app.exception_handler(SearchError)
    async def search_error(_request: Request, exc: SearchError) -> Response:
        return outcome(400, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return outcome(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return outcome(400, "invalid", "; ".join(str(e.get("msg")) for e in exc.errors()))



def create_app(database: Database, settings: ApiSettings) -> FastAPI:
    """The FHIR API over one database; `settings` say the public base URL and how tokens are checked."""
    app = FastAPI(title="dho-central FHIR (read-only)", docs_url=None, redoc_url=None, openapi_url=None)
    handlers = _Handlers(database, settings)
    started = datetime.now(UTC)
    _install_errors(app)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        began = time.monotonic()
        try:
            response = await call_next(request)
        except Exception as exc:
            # Answered here, not by Starlette's last-resort handler, which would re-raise it for the server
            # to log with its text (an SQL error quotes its parameters: pseudonyms).
            response = _crashed(exc)
        route = getattr(request.scope.get("route"), "path", "?")
        log.info("%s %s %d %.0f ms tenant=%s", request.method, route, response.status_code,
                 (time.monotonic() - began) * 1000, getattr(request.state, "tenant", "-"))
        return response

    exports = _Exports(handlers, settings.export_dir or Path(tempfile.mkdtemp(prefix="dho-fhir-export-")))

    @app.get("/fhir/$export")
    async def export(request: Request) -> Response:
        return await exports.kick_off(request)

    @app.get("/fhir/$export-status/{job_id}")
    async def export_status(request: Request, job_id: str) -> Response:
        return await exports.status(request, job_id)

    @app.delete("/fhir/$export-status/{job_id}")
    async def export_cancel(request: Request, job_id: str) -> Response:
        return await exports.cancel(request, job_id)

    @app.get("/fhir/$export-file/{job_id}/{name}")
    async def export_file(request: Request, job_id: str, name: str) -> Response:
        return await exports.file(request, job_id, name)

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        return _fhir(resource_json(capability_statement(settings.base, started)))

    @app.get("/fhir/Observation")
    async def search_observation(request: Request) -> Response:
        return await handlers.search(request)

    @app.get("/fhir/Observation/{observation_id}")
    async def read_observation(request: Request, observation_id: str) -> Response:
        return await handlers.read(request, "Observation", observation_id)

    @app.get("/fhir/Device/{device_id}")
    async def read_device(request: Request, device_id: str) -> Response:
        return await handlers.read(request, "Device", device_id)

    return app
