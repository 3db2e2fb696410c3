"""`dho-central fhir serve|export`: the read-only FHIR API and the NDJSON bulk export."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from central.store.commands import add_db_argument, open_database


def add_commands(subparsers: Any) -> None:
    fhir = subparsers.add_parser("fhir", help="FHIR R4 (PHD IG) output: read-only API and bulk export")
    sub = fhir.add_subparsers(dest="fhir_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve GET /fhir/Observation?patient=&date= and GET /fhir/Device/{id}")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    add_db_argument(serve)
    serve.set_defaults(run=_serve)
    export = sub.add_parser("export", help="write Observation.ndjson and Device.ndjson (FHIR bulk data format)")
    export.add_argument("--out", type=Path, required=True, metavar="DIR")
    export.add_argument("--tenant", help="only this tenant's resources")
    add_db_argument(export)
    export.set_defaults(run=_export)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.fhir.api import create_app

    database = open_database(args)
    try:
        uvicorn.run(create_app(database), host=args.host, port=args.port, log_level="info")
    finally:
        database.close()
    return 0


def _export(args: argparse.Namespace) -> int:
    from central.fhir.export import export_ndjson

    database = open_database(args)
    try:
        counts = export_ndjson(database, args.out, tenant=args.tenant)
    finally:
        database.close()
    for name, n in counts.items():
        print(f"{args.out / (name + '.ndjson')}: {n} resource(s)")
    return 0
