"""`dho-central db ...` and `dho-central gateways ...`: the schema and the registry of provisioned gateways."""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import asdict
from typing import Any

from central.errors import CentralError
from central.store.acl import mosquitto_acl
from central.store.database import Database, redact

TOPIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # docs/protocol.md: tenant and gateway ids
DB_HELP = "SQLite file path or postgresql://user@host:port/dbname (default: $DHO_CENTRAL_DB)"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=os.environ.get("DHO_CENTRAL_DB"), metavar="URL", help=DB_HELP)


def open_database(args: argparse.Namespace) -> Database:
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
    print(mosquitto_acl([(r.tenant, r.id) for r in database.gateways()], central_user=args.central_user), end="")
    database.close()
    return 0
