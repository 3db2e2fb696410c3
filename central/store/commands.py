"""`dho-central db ...` and `dho-central gateways ...`: the schema and the registry of provisioned gateways."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from central.errors import CentralError
from central.store.acl import mosquitto_acl
from central.store.database import Database, redact

TOPIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # docs/protocol.md: tenant and gateway ids
DB_HELP = "SQLite file path or postgresql://user@host:port/dbname (default: $DHO_CENTRAL_DB)"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """The `--db URL` option every central command that opens the database takes (default: DHO_CENTRAL_DB)."""
    parser.add_argument("--db", default=os.environ.get("DHO_CENTRAL_DB"), metavar="URL", help=DB_HELP)


def open_database(args: argparse.Namespace) -> Database:
    """The database `--db` names; CentralError with one line when none is given."""
    if not args.db:
        raise CentralError("no database: give --db URL (a SQLite path or a postgresql:// URL) or set DHO_CENTRAL_DB")
    return Database(args.db)


def add_commands(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="the database schema",
                               description="Create or upgrade the schema (workers also do this at start).")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    migrate = db_sub.add_parser("migrate", help="bring the schema to this version")
    add_db_argument(migrate)
    migrate.set_defaults(run=_migrate)

    gateways = subparsers.add_parser(
        "gateways", help="the registry of provisioned gateways",
        description="Only provisioned gateways are heard, each only under its own tenant, for its one patient "
        "pseudonym. `acl` prints the Mosquitto ACL that enforces the same at the broker.",
    )
    sub = gateways.add_subparsers(dest="gateways_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="provision a gateway (or move it to another tenant or patient)")
    add.add_argument("gateway", help="gateway id (its certificate's CN)")
    add.add_argument("--tenant", required=True)
    add.add_argument("--patient", required=True, help="pseudonym, never a national identity number")
    add_db_argument(add)
    add.set_defaults(run=_add)
    register = sub.add_parser(
        "register", help="register a kit from its registration.json (kit provision / kit reissue wrote it)",
        description="Adds the kit to the registry (or applies a reissued kit's new pseudonym, with an audit record "
        "of old -> new), and with --ca registers it in the tenant CA too; with --out also signs its CSR.")
    register.add_argument("registration", type=Path, help="the kit's registration.json")
    register.add_argument("--ca", type=Path, metavar="DIR", help="the tenant CA folder: register the kit there too")
    register.add_argument("--out", type=Path, metavar="FILE", help="with --ca: sign the kit's CSR into this file")
    register.add_argument("--days", type=int, default=365, help="certificate validity (default 365)")
    add_db_argument(register)
    register.set_defaults(run=_register)
    remove = sub.add_parser("remove", help="deprovision a gateway: its messages are refused from now on")
    remove.add_argument("gateway")
    add_db_argument(remove)
    remove.set_defaults(run=_remove)
    listing = sub.add_parser("list", help="every gateway with what it last reported")
    listing.add_argument("--tenant")
    listing.add_argument("--json", action="store_true")
    add_db_argument(listing)
    listing.set_defaults(run=_list)
    refusals = sub.add_parser("refusals", help="messages the central refused, newest first, with the reason code",
                              description="What the central service refused and answered with a reason code "
                              "(protocol 1.1): per gateway id, the code, the detail and the topic; never a payload.")
    refusals.add_argument("--gateway", metavar="ID", help="only this gateway id (as its topic named it)")
    refusals.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    refusals.add_argument("--json", action="store_true")
    add_db_argument(refusals)
    refusals.set_defaults(run=_refusals)
    acl = sub.add_parser("acl", help="print the Mosquitto ACL for the registered gateways")
    acl.add_argument("--central-user", default="dho-central", help="the central workers' certificate CN")
    acl.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE (atomically) instead of printing it")
    add_db_argument(acl)
    acl.set_defaults(run=_acl)


def _migrate(args: argparse.Namespace) -> int:
    database = open_database(args)
    print(f"{redact(database.url)}: schema up to date")
    database.close()
    return 0


def _add(args: argparse.Namespace) -> int:
    for what, value in (("gateway", args.gateway), ("tenant", args.tenant)):
        if not TOPIC_NAME.match(value):
            raise CentralError(f"{what} {value!r}: use 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)")
    database = open_database(args)
    database.provision(args.gateway, tenant=args.tenant, patient=args.patient)
    database.close()
    print(f"provisioned {args.gateway} for tenant {args.tenant}")
    return 0


def _read_registration(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CentralError(f"{path}: not a kit registration ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != "dho-gateway-registration":
        raise CentralError(f"{path}: not a kit registration (dho-gateway kit provision writes registration.json)")
    for what in ("gateway", "tenant"):
        if not TOPIC_NAME.match(str(data.get(what, ""))):
            raise CentralError(f"{path}: {what} {data.get(what)!r}: use 1-64 of A-Z a-z 0-9 . _ - ")
    if not str(data.get("patient") or "").strip():
        raise CentralError(f"{path}: no patient pseudonym")
    return data


def _register(args: argparse.Namespace) -> int:
    from central.ca import TenantCA

    data = _read_registration(args.registration)
    gateway, tenant = data["gateway"], data["tenant"]
    if args.out is not None and args.ca is None:
        raise CentralError("--out signs the kit's CSR: give the tenant CA with --ca DIR")
    ca = TenantCA(args.ca) if args.ca is not None else None
    if ca is not None and ca.tenant != tenant:
        raise CentralError(f"{args.registration}: the kit is for tenant {tenant!r}, the CA in {args.ca} is "
                           f"{ca.tenant!r}; nothing changed")
    database = open_database(args)
    try:
        changed = database.register(gateway, tenant=tenant, patient=str(data["patient"]),
                                    actor=f"cli:{getpass.getuser()}", reason=str(data.get("reason", "provision")))
    finally:
        database.close()
    print({None: f"{gateway}: already registered as it is (tenant {tenant})",
           "new": f"{gateway}: registered for tenant {tenant}"}.get(
        changed, f"{gateway}: re-registered for tenant {tenant} ({changed} changed; audit record written)"))
    if ca is not None:
        ca.register(gateway)
        if args.out is not None:
            if not data.get("csr"):
                raise CentralError(f"{args.registration}: no CSR in it; the kit was registered, nothing signed")
            cert = ca.sign(str(data["csr"]).encode(), gateway, days=args.days)
            tmp = args.out.with_name(f".{args.out.name}.tmp")
            tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            tmp.replace(args.out)
            print(f"{args.out}: client certificate for {gateway}, valid until {cert.not_valid_after_utc:%Y-%m-%d}; "
                  f"next: dho-gateway kit install-cert --config … {args.out}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    database = open_database(args)
    removed = database.deprovision(args.gateway)
    database.close()
    if not removed:
        raise CentralError(f"no gateway {args.gateway!r} in the registry")
    print(f"deprovisioned {args.gateway}")
    return 0


def _list(args: argparse.Namespace) -> int:
    database = open_database(args)
    records = database.gateways(args.tenant)
    database.close()
    if args.json:
        print(json.dumps([asdict(r) for r in records], default=str, indent=2))
        return 0
    for r in records:
        seen = f"{r.last_seen:%Y-%m-%d %H:%M:%S}Z" if r.last_seen else "never"
        depth = "?" if r.outbox_depth is None else str(r.outbox_depth)
        faults = f"; faults: {'; '.join(r.faults)}" if r.faults else ""
        batteries = ", ".join(
            f"{d.get('kind', '?')} {d['battery']}%" for d in r.devices if d.get("battery") is not None
        )
        faults += f"; batteries: {batteries}" if batteries else ""
        print(f"{r.tenant}/{r.id}: {r.state}, last seen {seen}, outbox {depth}, "
              f"version {r.software_version or '?'}, plan {r.plan or '?'} v{r.plan_version or '?'}{faults}")
    return 0


def _refusals(args: argparse.Namespace) -> int:
    database = open_database(args)
    records = database.refusals(args.gateway, limit=args.limit)
    database.close()
    if args.json:
        print(json.dumps([asdict(r) for r in records], default=str, indent=2))
        return 0
    if not records:
        print("no refusals" + (f" of {args.gateway}" if args.gateway else ""))
    for r in records:
        what = r.topic.rsplit("/", 1)[-1]
        print(f"{r.at:%Y-%m-%d %H:%M:%S}Z {r.gateway or '?'} {what}: {r.code or '?'}: {r.reason}")
    return 0


def _acl(args: argparse.Namespace) -> int:
    database = open_database(args)
    registered = [(r.tenant, r.id) for r in database.gateways()]
    database.close()
    text = mosquitto_acl(registered, central_user=args.central_user)
    if args.out is None:
        print(text, end="")
        return 0
    tmp = args.out.with_name(f".{args.out.name}.tmp")  # replaced whole: the broker never reads half a file
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(args.out)
    print(f"{args.out}: the ACL for {len(registered)} gateway(s); reload the broker (systemctl reload mosquitto)")
    return 0
