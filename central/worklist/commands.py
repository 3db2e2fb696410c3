"""`dho-central worklist ...`: serve the nurses' worklist, add a user, run the kit check once."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from central.errors import CentralError
from central.store import Database
from central.worklist.hours import DEFAULT, TenantHours
from central.worklist.security import MIN_PASSWORD, SIGN_ON_ONLY, ProxySignOn, hash_password
from central.worklist.server import CHECK_EVERY_S, WorklistServer
from central.worklist.store import ROLES, Worklist

Subparsers = Any


def add_commands(subparsers: Subparsers) -> None:
    """Add `worklist serve`, `worklist user add` and `worklist check` to dho-central."""
    room = subparsers.add_parser("worklist", help="the follow-up service's worklist: serve it, add users",
                                 description="The nurses' worklist: alerts per tenant, actions, audit trail.")
    commands = room.add_subparsers(dest="worklist_command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the worklist's pages")
    serve.add_argument("--db", required=True, help="database: a SQLite path or a postgresql:// URL")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8470, help="port (default 8470; 0: any free one)")
    serve.add_argument("--hours", default=DEFAULT, help=f"default service hours (default {DEFAULT!r})")
    serve.add_argument("--tenants", type=Path, help="TOML file with service hours per tenant")
    serve.add_argument("--silent-after-h", type=float, default=48.0,
                       help="a kit not heard from this long is an alert (hours, default 48)")
    serve.add_argument("--sign-on-header", metavar="HEADER",
                       help="single sign-on (OIDC) through an authenticating proxy that passes the user's name "
                       "in this header (e.g. X-Auth-Request-Preferred-Username)")
    serve.add_argument("--sign-on-proxy", action="append", metavar="ADDRESS",
                       help="the proxy's address, believed for --sign-on-header (default: 127.0.0.1 and ::1; "
                       "repeat for more)")
    serve.set_defaults(run=_serve)

    user = commands.add_parser("user", help="people of the follow-up service")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    add = user_commands.add_parser("add", help="add a user (or set a user's tenant, role and password)")
    add.add_argument("name")
    add.add_argument("--db", required=True, help="database: a SQLite path or a postgresql:// URL")
    add.add_argument("--tenant", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-file", type=Path,
                     help="read the password from this file's first line (default: ask twice)")
    add.add_argument("--sign-on-only", action="store_true",
                     help="no password: this user signs on only through the sign-on proxy")
    add.set_defaults(run=_add_user)

    check = commands.add_parser("check", help="raise alerts for silent kits once, now")
    check.add_argument("--db", required=True)
    check.add_argument("--silent-after-h", type=float, default=48.0)
    check.set_defaults(run=_check)


def _password(path: Path | None) -> str:
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CentralError(f"{path}: {exc.strerror or exc}") from None
        password = lines[0] if lines else ""
    else:
        if not sys.stdin.isatty():
            raise CentralError("no terminal to ask for the password: give --password-file")
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CentralError("the two passwords did not match")
    if len(password) < MIN_PASSWORD:
        raise CentralError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


def _add_user(args: argparse.Namespace) -> int:
    digest = SIGN_ON_ONLY if args.sign_on_only else hash_password(_password(args.password_file))
    database = Database(args.db)
    try:
        Worklist(database).add_user(args.name, tenant=args.tenant, role=args.role, password_hash=digest)
    finally:
        database.close()
    print(f"user {args.name}: {args.role} of tenant {args.tenant}")
    return 0


def _check(args: argparse.Namespace) -> int:
    database = Database(args.db)
    try:
        opened = Worklist(database).check_kits(datetime.now(UTC), silent_after=timedelta(hours=args.silent_after_h))
    finally:
        database.close()
    print(f"{opened} new silent-kit alert(s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    hours = TenantHours.load(args.tenants, args.hours)
    database = Database(args.db)
    sign_on = None
    if args.sign_on_header:
        sign_on = ProxySignOn(args.sign_on_header, frozenset(args.sign_on_proxy or ("127.0.0.1", "::1")))
    server = WorklistServer(Worklist(database), host=args.host, port=args.port, hours=hours,
                            silent_after=timedelta(hours=args.silent_after_h), check_every_s=CHECK_EVERY_S,
                            sign_on=sign_on)
    try:
        sock = server.bind()
    except OSError as exc:
        database.close()
        raise CentralError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"worklist: {server.address}", flush=True)
    try:
        asyncio.run(server.run(sock))
    finally:
        database.close()
    return 0
