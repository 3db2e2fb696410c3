"""A tenant with a root key, signing keys and a trust store, and signed plans for one gateway, built in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.plans import Binding, load_profile
from protocol import ConfigMessage, Envelope, Role, TrustedKey, TrustStore, encode_key, open_trust_store
from zoning import Override, PlanDocument, PlanSchedule

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TENANT, GATEWAY, PATIENT = "demo-kommune", "gw-0001", "p-7f3a9c"
BINDING = Binding(TENANT, GATEWAY, PATIENT)
ORDER = "GP order 2026-11-02"


@dataclass
class Signer:
    id: str
    role: Role
    holder: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    not_before: datetime = NOW - timedelta(days=30)
    not_after: datetime = NOW + timedelta(days=365)

    def trusted(self) -> TrustedKey:
        assert self.role != "root"
        return TrustedKey(id=self.id, role=self.role, holder=self.holder, public_key=encode_key(self.key.public_key()),
                          not_before=self.not_before, not_after=self.not_after)


@dataclass
class Tenant:
    root: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    gp: Signer = field(default_factory=lambda: Signer("gp-hansen", "prescriber", "Dr. Kari Hansen, GP"))
    nurse: Signer = field(default_factory=lambda: Signer("rn-olsen", "verifier", "Nurse Ola Olsen"))
    other_gp: Signer = field(default_factory=lambda: Signer("gp-berg", "prescriber", "Dr. Per Berg, GP"))

    @property
    def root_key_b64(self) -> str:
        return encode_key(self.root.public_key())

    def trust_store(self, version: int = 1, signers: list[Signer] | None = None,
                    root: Ed25519PrivateKey | None = None) -> Envelope:
        keys = [s.trusted() for s in (signers if signers is not None else [self.gp, self.nurse, self.other_gp])]
        store = TrustStore(tenant=TENANT, version=version, issued=NOW - timedelta(days=1), keys=tuple(keys))
        return Envelope(payload=store.model_dump(mode="json")).signed_by(root or self.root, "root-2026", "root")

    def opened_store(self, version: int = 1) -> TrustStore:
        return open_trust_store(self.trust_store(version), self.root.public_key())


def document(version: int = 1, *, spo2_red: int | None = 88, profile: str = "standard-copd",
             **changes: Any) -> PlanDocument:
    base = load_profile(profile)
    overrides = (Override(rule="spo2.red", limit=Decimal(spo2_red), reason=ORDER),) if spo2_red else ()
    fields: dict[str, Any] = {
        "tenant": TENANT, "gateway": GATEWAY, "patient": PATIENT, "version": version,
        "issued": NOW - timedelta(hours=1), "expires": NOW + timedelta(days=365),
        "profile": base.id, "profile_version": base.version, "profile_hash": base.content_hash(),
        "overrides": overrides, "schedule": PlanSchedule(enrolled=date(2026, 1, 1)), "language": "nb",
    }
    fields.update(changes)
    return PlanDocument(**fields)


def signed(doc: PlanDocument | dict[str, Any], *signers: Signer) -> Envelope:
    payload = doc if isinstance(doc, dict) else doc.model_dump(mode="json")
    envelope = Envelope(payload=payload)
    for s in signers:
        envelope = envelope.signed_by(s.key, s.id, s.role)
    return envelope


def message(plan: Envelope | None = None, trust_store: Envelope | None = None) -> bytes:
    return ConfigMessage(plan=plan, trust_store=trust_store).model_dump_json(exclude_none=True).encode()
