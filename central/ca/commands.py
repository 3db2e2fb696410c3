"""`dho-central ca …`: the tenant's gateway certificates, from the operator's shell."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from central.ca.authority import CA_DAYS, CERT_DAYS, CRL_DAYS, RENEW_WITHIN_DAYS, CAError, TenantCA
from central.ca.broker import BROKER_USER, write_broker_files


def _write_cert(path: Path, pem: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(pem)
    tmp.replace(path)


def _init(args: argparse.Namespace) -> int:
    ca = TenantCA.create(args.dir, args.tenant, days=args.days)
    print(f"CA for tenant {args.tenant} in {args.dir}; keep {ca.key_file} offline-safe. Next: the broker's "
          f"certificate and configuration (dho-central ca --dir {args.dir} broker --host NAME --out DIR)")
    return 0


def _broker(args: argparse.Namespace) -> int:
    ca = TenantCA(args.dir)
    done = write_broker_files(ca, args.out, names=args.host, addresses=args.ip, port=args.port, days=args.days)
    print(f"{done.cert}: the broker's certificate for {', '.join([*args.host, *args.ip])}, valid until "
          f"{done.not_after}; key {done.key}")
    if not done.key_owner_set:
        print(f"{done.key}: make it readable by the broker's user: chown {BROKER_USER} {done.key} (as root)")
    print(f"{done.conf}: the Mosquitto configuration; copy or link it to /etc/mosquitto/conf.d/ and restart "
          f"mosquitto. Write the ACL with `dho-central gateways acl --db URL > {done.acl}` after registering "
          f"gateways. Give each kit --broker-ca {ca.cert_file}")
    return 0


def _register(args: argparse.Namespace) -> int:
    ca = TenantCA(args.dir)
    for gateway in args.gateway:
        print(f"{gateway}: {'registered' if ca.register(gateway) else 'already registered'}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    try:
        csr = args.csr.read_bytes()
    except OSError as exc:
        raise CAError(f"{args.csr}: cannot be read: {exc.strerror}") from None
    cert = TenantCA(args.dir).sign(csr, args.gateway, days=args.days)
    _write_cert(args.out, cert.public_bytes(serialization.Encoding.PEM))
    print(f"{args.out}: client certificate for {args.gateway}, serial {cert.serial_number:x}, "
          f"valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    return 0


def _renew(args: argparse.Namespace) -> int:
    try:
        old = args.cert.read_bytes()
    except OSError as exc:
        raise CAError(f"{args.cert}: cannot be read: {exc.strerror}") from None
    cert = TenantCA(args.dir).renew(old, within_days=args.within_days, days=args.days, force=args.force)
    if cert is None:
        print(f"{args.cert}: expires in more than {args.within_days} days; not renewed (--force to renew now)")
        return 0
    _write_cert(args.out or args.cert, cert.public_bytes(serialization.Encoding.PEM))
    print(f"{args.out or args.cert}: renewed, serial {cert.serial_number:x}, valid until "
          f"{cert.not_valid_after_utc:%Y-%m-%d}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    ca = TenantCA(args.dir)
    serials = ca.revoke(args.gateway, args.reason)
    print(f"{args.gateway}: revoked {', '.join(f'{s:x}' for s in serials)}; {ca.crl_file} rewritten: "
          "reload the broker (systemctl reload mosquitto: SIGHUP) so it reads the new list")
    return 0


def _crl(args: argparse.Namespace) -> int:
    path = TenantCA(args.dir).write_crl(days=args.days)
    print(f"{path}: valid {args.days} day(s); rewrite it before then (a daily timer), or the broker refuses "
          "everyone; reload the broker after (systemctl reload mosquitto)")
    return 0


def _list(args: argparse.Namespace) -> int:
    ca = TenantCA(args.dir)
    now = dt.datetime.now(dt.UTC)
    due = {i.serial for i in ca.due(args.within_days)}
    for gateway in ca.gateways():
        records = [i for i in ca.issued() if i.gateway == gateway]
        if not records:
            print(f"{gateway:<24} registered, no certificate yet")
        for i in records:
            left = (dt.datetime.fromisoformat(i.not_after) - now).days
            state = (f"REVOKED {i.revoked_at[:10]} ({i.reason})" if i.revoked_at
                     else f"valid {left} more day(s)" + (" - RENEW" if i.serial in due else ""))
            print(f"{gateway:<24} {i.serial:x}  {state}")
    return 0


def add_commands(subparsers: Any) -> None:
    ca = subparsers.add_parser("ca", help="gateway certificates: tenant CA, sign, renew, revoke, CRL",
                               description="The tenant's gateway CA. A gateway's client certificate carries its "
                               "id as CN (the broker's username and ACL key). The broker reads the CA as cafile "
                               "and the revocation list as crlfile.")
    ca.add_argument("--dir", type=Path, required=True, metavar="DIR", help="the tenant CA's folder")
    commands = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create the tenant CA (once)")
    init.add_argument("--tenant", required=True)
    init.add_argument("--days", type=int, default=CA_DAYS, help=f"CA validity (default {CA_DAYS})")
    init.set_defaults(run=_init)

    broker = commands.add_parser("broker", help="the broker's server certificate and Mosquitto configuration")
    broker.add_argument("--host", action="append", default=[], metavar="NAME",
                        help="a host name the gateways connect to (repeat)")
    broker.add_argument("--ip", action="append", default=[], metavar="ADDRESS",
                        help="an IP address the gateways connect to (repeat)")
    broker.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="where server.pem, server.key, acl and mosquitto.conf go (e.g. /etc/mosquitto/dho)")
    broker.add_argument("--port", type=int, default=8883)
    broker.add_argument("--days", type=int, default=CERT_DAYS, help=f"validity (default {CERT_DAYS})")
    broker.set_defaults(run=_broker)

    register = commands.add_parser("register", help="expect these gateway ids (only they get certificates)")
    register.add_argument("gateway", nargs="+")
    register.set_defaults(run=_register)

    sign = commands.add_parser("sign", help="sign a gateway's CSR into its client certificate")
    sign.add_argument("--gateway", required=True, help="the gateway being enrolled; the CSR's CN must be it")
    sign.add_argument("--csr", type=Path, required=True)
    sign.add_argument("--out", type=Path, required=True)
    sign.add_argument("--days", type=int, default=CERT_DAYS, help=f"validity (default {CERT_DAYS})")
    sign.set_defaults(run=_sign)

    renew = commands.add_parser("renew", help="a new certificate for the same gateway and key, before expiry")
    renew.add_argument("--cert", type=Path, required=True, help="the gateway's current certificate")
    renew.add_argument("--out", type=Path, help="where the new one goes (default: replace --cert)")
    renew.add_argument("--within-days", type=int, default=RENEW_WITHIN_DAYS,
                       help=f"renew only when it expires within this many days (default {RENEW_WITHIN_DAYS})")
    renew.add_argument("--days", type=int, default=CERT_DAYS)
    renew.add_argument("--force", action="store_true", help="renew even if not due")
    renew.set_defaults(run=_renew)

    revoke = commands.add_parser("revoke", help="revoke a gateway's certificates and rewrite the CRL")
    revoke.add_argument("gateway")
    revoke.add_argument("--reason", default="unspecified", help="e.g. kit lost, kit returned, key compromised")
    revoke.set_defaults(run=_revoke)

    crl = commands.add_parser("crl", help="rewrite the CRL (run daily: it expires)")
    crl.add_argument("--days", type=int, default=CRL_DAYS)
    crl.set_defaults(run=_crl)

    listing = commands.add_parser("list", help="gateways, their certificates, what is due for renewal")
    listing.add_argument("--within-days", type=int, default=RENEW_WITHIN_DAYS)
    listing.set_defaults(run=_list)
