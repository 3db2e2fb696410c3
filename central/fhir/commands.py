"""`dho-central fhir serve|token|export`: the read-only FHIR API, the local demo issuer's tokens, and
the NDJSON bulk export."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

from central.errors import CentralError
from central.store import add_db_argument, open_database

log = logging.getLogger(__name__)
DEFAULT_KEY_DIR = Path(os.environ.get("DHO_CENTRAL_FHIR_ISSUER_DIR", "~/.local/share/dho-central/fhir-issuer"))


def add_commands(subparsers: Any) -> None:
    """`dho-central fhir serve|token|export`."""
    fhir = subparsers.add_parser("fhir", help="FHIR R4 (PHD IG) output: read-only API and bulk export")
    sub = fhir.add_subparsers(dest="fhir_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve /fhir/metadata, /fhir/Observation (search, read), /fhir/Device/{id}")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--base-url", default=os.environ.get("DHO_FHIR_BASE_URL"),
                       help="the public URL of the FHIR base, for links and DPoP (default http://HOST:PORT/fhir)")
    serve.add_argument("--issuer", default=os.environ.get("DHO_FHIR_ISSUER"),
                       help="trusted token issuer (iss); without it, the local demo issuer (loopback only)")
    serve.add_argument("--jwks-url", default=os.environ.get("DHO_FHIR_JWKS_URL"), help="the issuer's JWKS")
    serve.add_argument("--audience", default=os.environ.get("DHO_FHIR_AUDIENCE"),
                       help="the tokens' aud (default: the base URL)")
    serve.add_argument("--tenant-claim", default=os.environ.get("DHO_FHIR_TENANT_CLAIM", "tenant"),
                       help="the claim naming the caller's organisation (HelseID: e.g. orgnr)")
    serve.add_argument("--tenant-map", action="append", default=[], metavar="VALUE=TENANT",
                       help="map a claim value (an organisation number) to a tenant; repeat")
    serve.add_argument("--require-dpop", action="store_true", help="accept DPoP-bound tokens only")
    serve.add_argument("--export-dir", type=Path, default=os.environ.get("DHO_FHIR_EXPORT_DIR"),
                       help="where $export writes its NDJSON files (default: a new temporary folder)")
    _add_key_dir(serve)
    add_db_argument(serve)
    serve.set_defaults(run=_serve)
    token = sub.add_parser("token", help="issue an access token from the local demo issuer (development)")
    token.add_argument("--tenant", required=True)
    token.add_argument("--scope", default="system/Observation.rs system/Device.r")
    token.add_argument("--audience", default="http://127.0.0.1:8090/fhir", help="the server's base URL")
    token.add_argument("--lifetime", type=int, default=3600, metavar="SECONDS")
    token.add_argument("--jkt", help="bind the token to this DPoP key thumbprint (cnf.jkt)")
    _add_key_dir(token)
    token.set_defaults(run=_token)
    export = sub.add_parser("export", help="write Observation.ndjson and Device.ndjson (FHIR bulk data format)")
    export.add_argument("--out", type=Path, required=True, metavar="DIR")
    export.add_argument("--tenant", help="only this tenant's resources")
    add_db_argument(export)
    export.set_defaults(run=_export)


def _add_key_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR,
                        help=f"the local demo issuer's key (default {DEFAULT_KEY_DIR}, made on first use)")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach an address (the local demo issuer is allowed there only)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tenant_map(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        value, sep, tenant = pair.partition("=")
        if not sep or not value or not tenant:
            raise CentralError(f"--tenant-map {pair}: expected VALUE=TENANT")
        found[value] = tenant
    return found


def auth_settings(args: argparse.Namespace, base_url: str) -> Any:
    """The token checks `serve` was configured with; the local issuer only on a loopback address."""
    from central.fhir.auth import AuthSettings
    from central.fhir.issuer import LOCAL_ISSUER, LocalIssuer

    audience = args.audience or base_url
    tenant_map = _tenant_map(args.tenant_map)
    if args.issuer:
        if not args.jwks_url:
            raise CentralError("--issuer needs --jwks-url (where the issuer publishes its keys)")
        return AuthSettings(issuer=args.issuer, audience=audience, jwks_url=args.jwks_url,
                            tenant_claim=args.tenant_claim, tenant_map=tenant_map, require_dpop=args.require_dpop)
    if not is_loopback(args.host):
        raise CentralError(f"--host {args.host} is not a loopback address and no token issuer is configured "
                           "(--issuer, --jwks-url): refusing to serve patient data with the local demo issuer")
    issuer = LocalIssuer(args.key_dir.expanduser())
    log.warning("FHIR API: trusting the local demo issuer's tokens (%s); production configures --issuer",
                issuer.key_file)
    return AuthSettings(issuer=LOCAL_ISSUER, audience=audience, jwks=issuer.jwks(), tenant_claim="tenant",
                        require_dpop=args.require_dpop)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.fhir.api import ApiSettings, create_app
    from central.fhir.auth import TokenValidator

    if not args.base_url and args.issuer and not is_loopback(args.host):
        raise CentralError(f"--host {args.host}: give --base-url, the public URL clients use (https://…/fhir); "
                           "links and DPoP proofs are checked against it, never against the Host header")
    base_url = (args.base_url or f"http://{args.host}:{args.port}/fhir").rstrip("/")
    settings = ApiSettings(base_url=base_url, validator=TokenValidator(auth_settings(args, base_url)),
                           export_dir=Path(args.export_dir).expanduser() if args.export_dir else None)
    database = open_database(args)
    try:
        # uvicorn's access log would print every query string (pseudonyms): ours names routes only.
        uvicorn.run(create_app(database, settings), host=args.host, port=args.port, log_level="info",
                    access_log=False)
    finally:
        database.close()
    return 0


def _token(args: argparse.Namespace) -> int:
    from central.fhir.issuer import LocalIssuer

    issuer = LocalIssuer(args.key_dir.expanduser())
    print(issuer.issue(tenant=args.tenant, audience=args.audience.rstrip("/"), scope=args.scope,
                       lifetime_s=args.lifetime, jkt=args.jkt))
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
