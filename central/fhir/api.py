"""The read-only FHIR API: Observation search (a searchset Bundle) and Device read.

No writes, no patient identity beyond the pseudonym; put it behind the hospital integration's
authentication (it has none of its own)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from central.fhir.search import SearchError, date_bounds
from central.store import Database

FHIR_JSON = "application/fhir+json"
MAX_COUNT = 1000


def _outcome(status: int, code: str, text: str) -> JSONResponse:
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]},
        status_code=status, media_type=FHIR_JSON,
    )


def create_app(database: Database) -> FastAPI:
    app = FastAPI(title="dho-central FHIR (read-only)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/fhir/Observation")
    async def search_observations(
        request: Request,
        patient: str,
        date: Annotated[list[str] | None, Query()] = None,
        count: Annotated[int, Query(alias="_count", ge=0)] = 100,
        offset: Annotated[int, Query(alias="_offset", ge=0)] = 0,
    ) -> Any:
        pseudonym = patient.removeprefix("Patient/")
        try:
            bounds = date_bounds(date or [])
        except SearchError as exc:
            return _outcome(400, "invalid", str(exc))
        count = min(count, MAX_COUNT)
        total, resources = await asyncio.to_thread(
            database.observations, patient=pseudonym, since=bounds, limit=count, offset=offset
        )
        base = str(request.base_url).rstrip("/")
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [
                {"fullUrl": f"{base}/fhir/Observation/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in map(json.loads, resources)
            ],
        }
        if offset + count < total:
            nxt = request.url.include_query_params(_offset=offset + count, _count=count)
            bundle["link"].append({"relation": "next", "url": str(nxt)})
        return JSONResponse(bundle, media_type=FHIR_JSON)

    @app.get("/fhir/Device/{device_id}")
    async def read_device(device_id: str) -> Any:
        found = await asyncio.to_thread(database.device, device_id)
        if found is None:
            return _outcome(404, "not-found", f"Device/{device_id} is not known")
        return JSONResponse(json.loads(found), media_type=FHIR_JSON)

    return app
