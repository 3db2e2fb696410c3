"""`dho-gateway kit provision|install-cert|pair|check|reissue`: a kit's life, one command per step.

Heavy imports (bleak, cryptography, D-Bus) stay inside the handlers: building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.settings import ConfigError


def _broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _assignment(value: str) -> tuple[str, int]:
    address, _, number = value.partition("=")
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS=NUMBER, got {value!r}")
    return address.upper(), int(number)


def add_commands(subparsers: Any) -> None:
    """Add `kit` and its steps (provision, install-cert, pair, check, reissue) to the command line's sub-parsers."""
    kit = subparsers.add_parser(
        "kit", help="a kit's life: provision, pair, check, reissue (docs/kit.md)",
        description="Prepare a kit for a patient, check it before hand-over, and make a returned kit ready for "
        "the next patient. Each step is safe to run again. Details: docs/kit.md.")
    commands = kit.add_subparsers(dest="kit_command", required=True, metavar="STEP")

    p = commands.add_parser("provision", help="identity, keys, broker, trust store, patient -> the configuration")
    p.add_argument("--config", type=Path, required=True, help="configuration to write (/etc/dho-gateway/gateway.toml)")
    p.add_argument("--gateway-id", required=True, help="this kit's id: the CN of its client certificate")
    p.add_argument("--tenant", required=True, help="municipality or health trust")
    p.add_argument("--broker", type=_broker, required=True, metavar="HOST:PORT")
    p.add_argument("--broker-ca", type=Path, required=True, help="the broker's CA certificate (copied in)")
    p.add_argument("--trust-store", type=Path, help="the tenant's plan trust store (copied in; [plans] trust_store)")
    p.add_argument("--root-key", help="the tenant's root public key for trust stores (base64)")
    p.add_argument("--patient", help="patient pseudonym from the central (default: a new random one)")
    p.add_argument("--profile", default="standard-blood-pressure", help="standard zoning profile")
    p.add_argument("--language", choices=["nb", "en"], default="nb")
    p.add_argument("--data-dir", type=Path, default=Path("/var/lib/dho-gateway"))
    p.add_argument("--key-source", choices=["file", "systemd-credential"], default="systemd-credential",
                   help="outbox KEK: an encrypted systemd credential (default) or a 0600 file in data_dir")
    p.add_argument("--credential-store", type=Path, default=Path("/etc/credstore.encrypted/dho-outbox-kek"))
    p.add_argument("--with-key", default="auto", choices=["auto", "host", "tpm2", "host+tpm2"],
                   help="what encrypts the credential (systemd-creds --with-key)")
    p.add_argument("--force", action="store_true", help="provision an already provisioned kit again")
    p.add_argument("--technician-password", action="store_true",
                   help="ask for the technician page's password (twice, not echoed) and write its hash")

    c = commands.add_parser("install-cert", help="install the client certificate the tenant's CA signed")
    c.add_argument("--config", type=Path, required=True)
    c.add_argument("cert", type=Path, help="the signed certificate (dho-central ca sign --out ...)")

    pair = commands.add_parser("pair", help="scan, list nearby health devices, pair the chosen ones")
    pair.add_argument("--config", type=Path, required=True)
    pair.add_argument("--device", action="append", default=[], metavar="ADDRESS",
                      help="pair this device (repeat); without it: list and ask")
    pair.add_argument("--passkey", action="append", type=_assignment, default=[], metavar="ADDRESS=PASSKEY")
    pair.add_argument("--user", action="append", type=_assignment, default=[], metavar="ADDRESS=SLOT",
                      help="a shared scale's user slot for the patient")
    pair.add_argument("--serial", action="append", default=[], help="serials on the kit's packing list (repeat)")
    pair.add_argument("--scan-seconds", type=float, default=10.0)
    pair.add_argument("--min-rssi", type=int, default=-80, help="weaker devices are refused (default -80 dBm)")

    check = commands.add_parser("check", help="the hand-over check: pass/fail lines, exit 1 on any failure")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--json", action="store_true")
    check.add_argument("--cert-days", type=int, default=30, help="certificate must be valid this many more days")
    check.add_argument("--battery-min", type=int, default=20, help="percent")
    check.add_argument("--scan-seconds", type=float, default=10.0)
    check.add_argument("--central-timeout", type=float, default=15.0, metavar="S",
                       help="seconds to wait for the central service's ack of the probe (default 15)")

    r = commands.add_parser("reissue", help="wipe, remove bonds, new patient pseudonym and KEK (resumable)")
    r.add_argument("--config", type=Path, required=True)
    r.add_argument("--patient", help="the next patient's pseudonym (default: a new random one)")
    r.add_argument("--with-key", default="auto", choices=["auto", "host", "tpm2", "host+tpm2"])
    r.add_argument("--yes", action="store_true", help="really reissue (without it, only say what would go)")


def _provision(args: argparse.Namespace) -> int:
    from gateway.kit.provision import Provisioning, provision

    password_hash = None
    if args.technician_password:  # asked before anything is written: a refused password changes nothing
        from gateway.web import ask_new_password, hash_password

        password_hash = hash_password(ask_new_password())
    done = provision(Provisioning(
        config=args.config, gateway_id=args.gateway_id, tenant=args.tenant, broker_host=args.broker[0],
        broker_port=args.broker[1], broker_ca=args.broker_ca, profile=args.profile, patient=args.patient,
        trust_store=args.trust_store, root_key=args.root_key, data_dir=args.data_dir, key_source=args.key_source,
        credential_store=args.credential_store, credential_key=args.with_key, language=args.language,
        force=args.force, technician_password_hash=password_hash))
    for what in done.created:
        print(f"made {what}")
    if done.backup:
        print(f"earlier configuration kept as {done.backup}")
    print(f"{done.config}: gateway {args.gateway_id}, tenant {args.tenant}, patient {done.patient}, profile "
          f"{args.profile}")
    print(f"{done.config.with_name('registration.json')}: what the central service needs (id, tenant, pseudonym, "
          "CSR)")
    print(f"next: dho-central gateways register --db URL --ca CA {done.config.with_name('registration.json')} "
          f"--out gateway.pem (registers the kit and signs its CSR), then dho-gateway kit install-cert --config "
          f"{done.config} gateway.pem")
    return 0


def _install_cert(args: argparse.Namespace) -> int:
    from gateway.kit.provision import install_certificate

    cert = install_certificate(args.config, args.cert)
    print(f"certificate installed: serial {cert.serial_number:x}, valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    return 0


def _pair(args: argparse.Namespace) -> int:
    from gateway.kit.pair import PairRequest, pair_with_source

    request = PairRequest(addresses=args.device, passkeys=dict(args.passkey), users=dict(args.user),
                          serials=set(args.serial), min_rssi=args.min_rssi, scan_s=args.scan_seconds)
    paired = asyncio.run(pair_with_source(args.config, request, ask=None if args.device else input))
    print(f"{len(paired)} device(s) added to {args.config}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from gateway.kit.check import as_json, render, run_checks, unfinished_reissue
    from gateway.settings import load_settings

    unfinished = unfinished_reissue(args.config)
    checks = [unfinished] if unfinished is not None else asyncio.run(run_checks(
        load_settings(args.config), min_days=args.cert_days, scan_s=args.scan_seconds, battery_min=args.battery_min,
        central_timeout_s=args.central_timeout))
    print(json.dumps(as_json(checks), indent=2) if args.json else render(checks))
    return 0 if all(c.ok for c in checks) else 1


def _reissue(args: argparse.Namespace) -> int:
    from gateway.ble import BleBackends
    from gateway.kit.radio import BondError, remove_bond_bluez
    from gateway.kit.reissue import journal_path, reissue
    from gateway.settings import load_settings

    async def unpair(address: str, _backends: BleBackends | None) -> None:
        try:
            await remove_bond_bluez(address)
        except BondError as exc:
            raise ConfigError(f"{exc}; start Bluetooth (systemctl start bluetooth) and run reissue again: it "
                              "continues where it stopped") from None

    if not args.yes and not journal_path(args.config).exists():
        g = load_settings(args.config).gateway
        print(f"would crypto-erase {g.data_dir} (patient {g.patient}'s readings, unacknowledged ones too), remove "
              "the devices' bonds, and give the kit a new patient pseudonym and KEK; run again with --yes")
        return 0
    done = asyncio.run(reissue(args.config, patient=args.patient, with_key=args.with_key, unpair=unpair))
    print(f"reissued: patient {done.old_patient} -> {done.new_patient}; next: dho-central gateways register --db URL "
          f"{args.config.with_name('registration.json')} (the central must know the new pseudonym), "
          "dho-gateway kit pair, then kit check")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the `kit` step named in `args`; returns the exit code.

    A number that does not parse, or a malformed file, is raised as `ConfigError` (one line).
    """
    handlers = {"provision": _provision, "install-cert": _install_cert, "pair": _pair, "check": _check,
                "reissue": _reissue}
    try:
        return handlers[args.kit_command](args)
    except ValueError as exc:  # a typed passkey or slot that is not a number, a malformed file
        raise ConfigError(f"kit {args.kit_command}: {exc}") from None
