"""`dho-central plan …`: keys, trust store, draft, diff, sign, verify, publish, audit (README: clinician's steps)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from central.errors import CentralError
from central.plans.audit import AuditEntry, SqliteAuditLog
from central.plans.drafting import describe_changes, draft, effective, parse_override, summary, unsigned
from central.plans.keys import generate, load_private, load_public
from central.plans.proposal import describe_proposal, fetch_proposal
from central.plans.publish import publish_config
from central.plans.shipped import profile_names
from protocol import (
    BrokerSettings,
    ConfigMessage,
    Envelope,
    SignedError,
    TrustedKey,
    TrustStore,
    check_two_people,
    describe,
    open_trust_store,
    signers,
    validate,
)
from zoning import PlanDocument

Subparsers = Any  # argparse's _SubParsersAction is private


def _read_envelope(path: Path) -> Envelope:
    try:
        return Envelope.parse(path.read_bytes())
    except OSError as exc:
        raise CentralError(f"{path}: cannot read: {exc.strerror}") from None
    except SignedError as exc:
        raise CentralError(f"{path}: {exc}") from None


def _document(envelope: Envelope, where: Path) -> PlanDocument:
    try:
        return validate(PlanDocument, envelope.payload, "plan")
    except SignedError as exc:
        raise CentralError(f"{where}: {exc}") from None


def _write(path: Path, envelope: Envelope) -> None:
    path.write_bytes(envelope.to_json() + b"\n")


def _trust_store(path: Path, root_pub: Path) -> TrustStore:
    root = load_public(root_pub)
    if root.role != "root":
        raise CentralError(f"{root_pub}: a {root.role} key, not the tenant's root key")
    try:
        return open_trust_store(_read_envelope(path), root.key)
    except SignedError as exc:
        raise CentralError(f"{path}: {exc}") from None


def _keygen(args: argparse.Namespace) -> int:
    key, pub = generate(args.id, args.role, args.holder, args.out, now=datetime.now(UTC), days=args.days)
    print(f"private key {key} (keep it to yourself; mode 0600)")
    print(f"public key  {pub} (give it to whoever keeps the trust store)")
    if args.role == "root":
        print(f"for each gateway's configuration: [plans] root_key = \"{load_public(pub).public_key}\"")
    return 0


def _trust_store_create(args: argparse.Namespace) -> int:
    root_info = load_public(args.root_pub)
    keys = []
    for path in args.key:
        info = load_public(path)
        if info.role == "root":
            raise CentralError(f"{path}: the root key signs the trust store; it is not listed in it")
        keys.append(TrustedKey.model_validate(info.model_dump()))
    try:
        store = TrustStore(tenant=args.tenant, version=args.version, issued=datetime.now(UTC), keys=tuple(keys))
    except ValidationError as exc:
        raise CentralError(f"trust store: {describe(exc)}") from None
    envelope = Envelope(payload=store.model_dump(mode="json")).signed_by(
        load_private(args.root_key), root_info.id, "root")
    open_trust_store(envelope, root_info.key)  # the root key file and the public file belong together
    _write(args.out, envelope)
    print(f"trust store v{store.version} for {store.tenant}: {len(keys)} key(s), signed by root key {root_info.id}"
          f" -> {args.out}")
    return 0


def _draft(args: argparse.Namespace) -> int:
    overrides = [parse_override(rule_value.partition("=")[0], rule_value.partition("=")[2], order)
                 for rule_value, order in args.set or []]
    overrides += [parse_override(rule, "off", order) for rule, order in args.off or []]
    document = draft(tenant=args.tenant, gateway=args.gateway, patient=args.patient, version=args.version,
                     profile=args.profile, overrides=overrides, enrolled=args.enrolled,
                     issued=datetime.now(UTC), valid_days=args.valid_days, language=args.language)
    before = _in_force(args.audit, document)
    if before is not None and before.version >= document.version:
        raise CentralError(f"plan v{before.version} was published already for this patient: draft with "
                           f"--version {before.version + 1}")
    _write(args.out, unsigned(document))
    print(summary(document) + f" -> {args.out}")
    for line in describe_changes(before, document):
        print(f"  {line}")
    return 0


def _in_force(audit_path: Path | None, document: PlanDocument) -> PlanDocument | None:
    """The last plan published for this gateway and patient, from the audit trail."""
    if audit_path is None or not audit_path.exists():
        return None
    audit = SqliteAuditLog(audit_path)
    try:
        latest = audit.latest(document.tenant, document.gateway, document.patient)
    finally:
        audit.close()
    if latest is None:
        return None
    return _document(Envelope.parse(latest.document.encode()), audit_path)


def _diff(args: argparse.Namespace) -> int:
    envelope = _read_envelope(args.plan)
    document = _document(envelope, args.plan)
    before = (_document(_read_envelope(args.against), args.against) if args.against
              else _in_force(args.audit, document))
    print(summary(document))
    print("against " + (f"plan v{before.version} in force" if before else "the standard profile") + ":")
    for line in describe_changes(before, document):
        print(f"  {line}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    envelope = _read_envelope(args.plan)
    document = _document(envelope, args.plan)
    effective(document)  # never sign what the box would refuse
    info = load_public(args.pub)
    if info.role == "root":
        raise CentralError("the root key signs trust stores, not plans")
    if any(s.key == info.id for s in envelope.signatures):
        raise CentralError(f"key {info.id} has signed this plan already")
    if any(s.role == info.role for s in envelope.signatures):
        raise CentralError(f"a {info.role} has signed this plan already: the other signature must be a "
                           f"{'verifier' if info.role == 'prescriber' else 'prescriber'}'s")
    signed = envelope.signed_by(load_private(args.key), info.id, info.role)
    _write(args.out or args.plan, signed)
    print(f"signed {summary(document)} as {info.role} ({info.holder}, key {info.id}); "
          f"{len(signed.signatures)} of 2 signatures; hash {signed.hash}")
    before = _in_force(args.audit, document)
    print("what you signed, against " + (f"plan v{before.version} in force" if before else "the standard profile")
          + ":")
    for line in describe_changes(before, document):
        print(f"  {line}")
    return 0


def _verified(plan: Path, store_path: Path, root_pub: Path) -> tuple[Envelope, PlanDocument, TrustStore, str]:
    envelope = _read_envelope(plan)
    store = _trust_store(store_path, root_pub)
    try:
        people = check_two_people(envelope, store, datetime.now(UTC))
    except SignedError as exc:
        raise CentralError(f"{plan}: {exc}") from None
    document = _document(envelope, plan)
    effective(document)
    return envelope, document, store, signers(people)


def _verify(args: argparse.Namespace) -> int:
    envelope, document, store, who = _verified(args.plan, args.trust_store, args.root_pub)
    print(f"OK: {summary(document)}")
    print(f"signed by {who}; trust store v{store.version}; hash {envelope.hash}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    envelope, document, store, who = _verified(args.plan, args.trust_store, args.root_pub)
    audit = SqliteAuditLog(args.audit)
    try:
        before = audit.latest(document.tenant, document.gateway, document.patient)
        if before is not None and before.version >= document.version and before.plan_hash != envelope.hash:
            raise CentralError(f"plan v{before.version} was published already; the gateway accepts only a higher "
                               "version: draft again with --version " + str(before.version + 1))
        in_force = _document(Envelope.parse(before.document.encode()), args.audit) if before else None
        changes = describe_changes(in_force, document)
        message = ConfigMessage(plan=envelope, trust_store=_read_envelope(args.trust_store) if args.with_trust_store
                                else None)
        asyncio.run(publish_config(_broker_settings(args), document.tenant, document.gateway, message))
        if before is None or before.plan_hash != envelope.hash:
            prescriber, verifier = (f"{k.holder} (key {k.id})" for k in check_two_people(
                envelope, store, datetime.now(UTC)))
            audit.record(AuditEntry(datetime.now(UTC).isoformat(), document.tenant, document.gateway,
                                    document.patient, document.version, envelope.hash, prescriber, verifier,
                                    "\n".join(changes), envelope.to_json().decode()))
    finally:
        audit.close()
    print(f"published {summary(document)} (retained) to gateway {document.gateway}; signed by {who}")
    return 0


def _publish_trust_store(args: argparse.Namespace) -> int:
    """A new trust store on its own (revocation without waiting for a new plan). The retained message of
    each gateway is replaced, so it carries that gateway's last published plan along."""
    store = _trust_store(args.trust_store, args.root_pub)
    envelope = _read_envelope(args.trust_store)
    broker = _broker_settings(args)
    audit = SqliteAuditLog(args.audit)
    try:
        for gateway in args.gateway:
            latest = audit.latest(store.tenant, gateway)
            plan = Envelope.parse(latest.document.encode()) if latest else None
            asyncio.run(publish_config(broker, store.tenant, gateway, ConfigMessage(plan=plan, trust_store=envelope)))
            print(f"published trust store v{store.version} to gateway {gateway}"
                  + (f" with its plan v{latest.version}" if latest else ""))
    finally:
        audit.close()
    return 0


def _broker_settings(args: argparse.Namespace) -> BrokerSettings:
    try:
        return BrokerSettings(host=args.broker[0], port=args.broker[1], insecure_dev=args.insecure_dev,
                              ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
    except ValidationError as exc:
        raise CentralError(f"broker: {describe(exc)}") from None


def _proposal(args: argparse.Namespace) -> int:
    proposal = asyncio.run(fetch_proposal(_broker_settings(args), args.tenant, args.gateway, wait_s=args.wait))
    if proposal is None:
        print(f"gateway {args.gateway} has sent no baseline proposal (it does after 14 days of daily readings)")
        return 1
    for line in describe_proposal(proposal):
        print(line)
    return 0


def _broker_arguments(p: argparse.ArgumentParser, *, audit: bool = True) -> None:
    p.add_argument("--broker", type=_broker, required=True, metavar="HOST:PORT")
    p.add_argument("--insecure-dev", action="store_true", help="plain TCP (development only)")
    p.add_argument("--ca-file", type=Path)
    p.add_argument("--cert-file", type=Path)
    p.add_argument("--key-file", type=Path)
    if audit:
        p.add_argument("--audit", type=Path, required=True, help="the audit trail (SQLite)")


def _audit(args: argparse.Namespace) -> int:
    audit = SqliteAuditLog(args.audit)
    try:
        entries = audit.entries(args.gateway)
    finally:
        audit.close()
    for e in entries:
        print(f"{e.published}  {e.tenant}/{e.gateway}  plan v{e.version}  {e.plan_hash}")
        print(f"  ordered by {e.prescriber}; verified by {e.verifier}")
        for line in e.changes.splitlines():
            print(f"    {line}")
    if not entries:
        print("no plan published yet")
    return 0


def _broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def add_commands(subparsers: Subparsers) -> None:
    """Add `dho-central plan` and its steps (STEP: keygen, trust-store, draft, diff, sign, verify, publish,
    publish-trust-store, proposal, audit) to the command line's subparsers."""
    plan = subparsers.add_parser("plan", help="draft, sign, verify and publish patients' plans",
                                 description="A patient's thresholds: drafted from a standard profile and the "
                                 "doctor's order, signed by the prescriber and a second person (verifier), "
                                 "published to the patient's gateway. README: the clinician's steps.")
    commands = plan.add_subparsers(dest="plan_command", required=True, metavar="STEP")
    _add_keygen(commands)
    _add_trust_store(commands)
    _add_draft(commands)
    _add_diff(commands)
    _add_sign(commands)
    _add_verify_and_publish(commands)
    _add_publish_trust_store(commands)
    _add_proposal(commands)
    _add_audit(commands)


def _add_keygen(commands: Subparsers) -> None:
    p = commands.add_parser("keygen", help="make a key pair for a prescriber, a verifier or the tenant root")
    p.add_argument("--id", required=True, help="key id, e.g. gp-hansen-2026")
    p.add_argument("--role", required=True, choices=["prescriber", "verifier", "root"])
    p.add_argument("--holder", required=True, help="who holds it, e.g. 'Dr. Kari Hansen, GP'")
    p.add_argument("--days", type=int, default=730, help="valid for this many days (default 730)")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR")
    p.set_defaults(run=_keygen)


def _add_trust_store(commands: Subparsers) -> None:
    p = commands.add_parser("trust-store", help="list the signing keys and sign the list with the root key",
                            description="A newer version replaces the old one on every gateway: a key left out "
                            "is revoked (docs/plans.md).")
    p.add_argument("--tenant", required=True)
    p.add_argument("--version", type=int, required=True, help="higher than the trust store in force")
    p.add_argument("--key", type=Path, action="append", required=True, metavar="PUB.json",
                   help="a prescriber's or verifier's public key file (repeat)")
    p.add_argument("--root-key", type=Path, required=True, metavar="ROOT.key", help="the offline root private key")
    p.add_argument("--root-pub", type=Path, required=True, metavar="ROOT.pub.json")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.set_defaults(run=_trust_store_create)


def _add_draft(commands: Subparsers) -> None:
    p = commands.add_parser("draft", help="a new plan from a standard profile plus the doctor's overrides")
    p.add_argument("--tenant", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--patient", required=True, help="the patient's pseudonym (never a national id)")
    p.add_argument("--version", type=int, required=True, help="higher than the plan in force")
    p.add_argument("--profile", required=True, choices=profile_names())
    p.add_argument("--set", nargs=2, action="append", metavar=("RULE=LIMIT", "ORDER"),
                   help="a new limit for one rule and the order it comes from, e.g. spo2.red=88 'GP order 2026-11-02'")
    p.add_argument("--off", nargs=2, action="append", metavar=("RULE", "ORDER"), help="switch one rule off")
    p.add_argument("--enrolled", type=date.fromisoformat, required=True, help="enrolment date, YYYY-MM-DD")
    p.add_argument("--valid-days", type=int, default=365, help="the plan expires after this (default 365)")
    p.add_argument("--language", choices=["nb", "en"], default="nb")
    p.add_argument("--audit", type=Path, help="audit trail: show the changes against the plan published last")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.set_defaults(run=_draft)


def _add_diff(commands: Subparsers) -> None:
    p = commands.add_parser("diff", help="what the plan changes, in plain language, for the second person")
    p.add_argument("plan", type=Path)
    p.add_argument("--against", type=Path, help="the plan in force (default: the last published, from --audit)")
    p.add_argument("--audit", type=Path)
    p.set_defaults(run=_diff)


def _add_sign(commands: Subparsers) -> None:
    p = commands.add_parser("sign", help="sign a plan as prescriber or verifier")
    p.add_argument("plan", type=Path)
    p.add_argument("--key", type=Path, required=True, metavar="ID.key")
    p.add_argument("--pub", type=Path, required=True, metavar="ID.pub.json", help="its public file (id and role)")
    p.add_argument("--out", type=Path, help="default: sign the file in place")
    p.add_argument("--audit", type=Path, help="audit trail: show the changes against the plan published last")
    p.set_defaults(run=_sign)


def _add_verify_and_publish(commands: Subparsers) -> None:
    for name, handler, text in (("verify", _verify, "check both signatures against the trust store"),
                                ("publish", _publish, "verify, send to the gateway (retained), record in the audit")):
        p = commands.add_parser(name, help=text)
        p.add_argument("plan", type=Path)
        p.add_argument("--trust-store", type=Path, required=True, metavar="FILE")
        p.add_argument("--root-pub", type=Path, required=True, metavar="ROOT.pub.json")
        p.set_defaults(run=handler)
        if name == "publish":
            _broker_arguments(p)
            p.add_argument("--with-trust-store", action="store_true",
                           help="send the trust store along (a new version revokes the keys it leaves out)")


def _add_publish_trust_store(commands: Subparsers) -> None:
    p = commands.add_parser("publish-trust-store", help="send a new trust store version to gateways now",
                            description="Revocation without waiting for a new plan: each gateway's retained "
                            "message gets the new trust store and the plan published to it last.")
    p.add_argument("trust_store", type=Path)
    p.add_argument("--root-pub", type=Path, required=True, metavar="ROOT.pub.json")
    p.add_argument("--gateway", action="append", required=True, help="a gateway of the tenant (repeat)")
    _broker_arguments(p)
    p.set_defaults(run=_publish_trust_store)


def _add_proposal(commands: Subparsers) -> None:
    p = commands.add_parser("proposal", help="the gateway's 14-day baseline proposal, as the start of an order",
                            description="Reads the proposal the gateway keeps retained on up/proposal and prints "
                            "it with the `draft --set` each proposed bound would take. Never applied by itself.")
    p.add_argument("--tenant", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for it (default 5)")
    _broker_arguments(p, audit=False)
    p.set_defaults(run=_proposal)


def _add_audit(commands: Subparsers) -> None:
    p = commands.add_parser("audit", help="every published plan with who ordered and who verified it")
    p.add_argument("--audit", type=Path, required=True)
    p.add_argument("--gateway")
    p.set_defaults(run=_audit)
