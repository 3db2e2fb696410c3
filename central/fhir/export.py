"""NDJSON bulk export: one resource per line, one file per resource type (FHIR Bulk Data format)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from central.fhir.mapping import parse_resource, resource_json
from central.store import Database


def _write(path: Path, resources: Iterator[str]) -> int:
    tmp = path.with_suffix(".ndjson.part")
    n = 0
    with tmp.open("w", encoding="utf-8") as out:
        for text in resources:
            # Parsed with Decimals and written back: one line, and the digits measured (83.800, not 83.8).
            out.write(resource_json(parse_resource(text)) + "\n")
            n += 1
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)  # a reader never sees half a file
    return n


def export_ndjson(database: Database, out: Path, *, tenant: str | None = None) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "Observation": _write(out / "Observation.ndjson", database.iter_observations(tenant=tenant)),
        "Device": _write(out / "Device.ndjson", database.iter_devices(tenant=tenant)),
    }
