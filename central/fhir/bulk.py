"""FHIR Bulk Data `$export` (system level, scoped to the caller's tenant): an asynchronous job writing
one NDJSON file per resource type, polled at its status URL, its files fetched with the same token.

Jobs live in this process's memory (a restart forgets them; the client kicks off again) and their
files under the export folder. `_since` exports what was stored at or after that instant; the
manifest's `transactionTime` is the kick-off time less a minute (a batch committing while the export
starts carries a slightly earlier time), so exporting again with `_since=<transactionTime>` may repeat
a few resources but never misses one.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from central.fhir.mapping import served_json
from central.store import Database, StoredResource, export_devices, export_observations

log = logging.getLogger(__name__)
EXPORT_TYPES = ("Observation", "Device")
COMMIT_LAG = timedelta(minutes=1)
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})


@dataclass
class ExportJob:
    id: str
    tenant: str
    types: tuple[str, ...]
    since: datetime | None
    request: str  # the kick-off request's public URL
    transaction_time: datetime
    state: str = "running"  # running, done, failed, cancelled
    progress: str = "starting"
    output: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


class BulkExports:
    """The export jobs of one API process and the folder their files are written to."""

    def __init__(self, database: Database, directory: Path) -> None:
        self.database = database
        self.directory = directory
        self._jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()

    def start(self, tenant: str, types: tuple[str, ...], since: datetime | None, request: str) -> ExportJob:
        """A new job for this tenant, running in its own thread."""
        job = ExportJob(uuid.uuid4().hex, tenant, types, since, request, datetime.now(UTC) - COMMIT_LAG)
        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=f"fhir-export-{job.id[:8]}", daemon=True).start()
        return job

    def get(self, tenant: str, job_id: str) -> ExportJob | None:
        """The job, if it is this tenant's (another tenant's job does not exist for this caller)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def cancel(self, tenant: str, job_id: str) -> bool:
        """Stop and forget this tenant's job and delete its files; False if there is no such job."""
        job = self.get(tenant, job_id)
        if job is None:
            return False
        with self._lock:
            job.state = "cancelled"
            del self._jobs[job_id]
        shutil.rmtree(self.directory / job_id, ignore_errors=True)
        return True

    def file(self, tenant: str, job_id: str, name: str) -> Path | None:
        """One output file of this tenant's finished job."""
        job = self.get(tenant, job_id)
        if job is None or job.state != "done" or name not in {f"{t}.ndjson" for t in job.types}:
            return None
        return self.directory / job_id / name

    def _sources(self, job: ExportJob) -> dict[str, Callable[[], Iterator[StoredResource]]]:
        return {
            "Observation": lambda: export_observations(self.database, job.tenant, job.since),
            "Device": lambda: export_devices(self.database, job.tenant, job.since),
        }

    def _run(self, job: ExportJob) -> None:
        folder = self.directory / job.id
        try:
            folder.mkdir(parents=True, mode=0o700)
            sources = self._sources(job)
            output = []
            for kind in job.types:
                job.progress = f"writing {kind}"
                count = _write(folder / f"{kind}.ndjson", sources[kind](), lambda: job.state == "cancelled")
                output.append({"type": kind, "count": count})
            job.output = output
            job.state = "done" if job.state == "running" else job.state
        except Exception as exc:  # a job that fails says so at its status URL
            log.error("FHIR export %s failed: %s", job.id, type(exc).__name__)
            log.debug("FHIR export failed", exc_info=exc)
            job.error = type(exc).__name__
            job.state = "failed"


def _write(path: Path, resources: Iterator[StoredResource], cancelled: Callable[[], bool]) -> int:
    part = path.with_suffix(".ndjson.part")
    count = 0
    with part.open("w", encoding="utf-8") as out:
        for stored in resources:
            if cancelled():
                break
            out.write(served_json(stored.resource, stored.last_updated) + "\n")
            count += 1
        out.flush()
        os.fsync(out.fileno())
    part.replace(path)  # a client never fetches half a file
    return count


def manifest(job: ExportJob, base: str) -> dict[str, Any]:
    """The completed job's manifest (Bulk Data IG): its files need the same access token."""
    return {
        "transactionTime": job.transaction_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request": job.request,
        "requiresAccessToken": True,
        "output": [{"type": o["type"], "url": f"{base}/$export-file/{job.id}/{o['type']}.ndjson", "count": o["count"]}
                   for o in job.output],
        "error": [],
    }
