"""Checking a `down/config` message against everything the box knows: pure apart from the crypto.

Order: bounds and JSON shape first (protocol.signed.parse_json), then the trust store's root signature,
then the two-person rule, and only then the plan's content, so nothing unsigned is looked at deeply.
Any failure is a PlanRejected with one line; the caller keeps the plan in force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from gateway.errors import GatewayError
from protocol import (
    ConfigMessage,
    Envelope,
    SignedError,
    TrustedKey,
    TrustStore,
    check_two_people,
    describe,
    open_trust_store,
    validate,
)
from zoning import AdviceBook, Plan, PlanDocument, Profile, plan_from_document

# Box clocks drift and may be set late after a power cut; a plan "issued" further ahead than this is odd.
ISSUED_AHEAD = timedelta(days=1)


class PlanRejected(Exception):
    """A down/config message refused: `reason` is one line for logs and events (no pseudonyms in it).

    `version` is the refused plan's version when it got that far. Deliberately not a `GatewayError`:
    it never leaves the plan keeper, which turns it into a `plan_rejected` event.
    """

    def __init__(self, reason: str, version: int | None = None, *, junk: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.version = version
        self.junk = junk  # not a config message at all (not JSON, not the format): said once per interval


@dataclass(frozen=True)
class Binding:
    """Who this box is: a plan must name exactly these."""

    tenant: str
    gateway: str
    patient: str


@dataclass(frozen=True)
class InForce:
    """What is in force on the box, which a new message must not go back from: trust store, plan version, hash."""

    trust_store: TrustStore | None
    plan_version: int | None
    plan_hash: str | None


@dataclass(frozen=True)
class Accepted:
    """A down/config message that passed every check: what to keep (sealed) first and apply after."""

    trust_store: TrustStore | None  # a newer trust store to keep and use, or None
    trust_store_envelope: Envelope | None
    plan: Plan | None  # a new plan to keep and apply, or None (only a trust store, or the plan in force again)
    plan_envelope: Envelope | None
    document: PlanDocument | None
    signers: tuple[TrustedKey, TrustedKey] | None  # (prescriber, verifier)


ProfileSource = Callable[[str], Profile]


def _newer_trust_store(envelope: Envelope, root: Ed25519PublicKey | None, binding: Binding,
                       current: TrustStore | None) -> TrustStore | None:
    if root is None:
        raise PlanRejected("a trust store arrived but no root key is provisioned ([plans] root_key)")
    try:
        store = open_trust_store(envelope, root)
    except SignedError as exc:
        raise PlanRejected(str(exc)) from None
    if store.tenant != binding.tenant:
        raise PlanRejected(f"the trust store is for tenant {store.tenant}, not {binding.tenant}")
    if current is not None:
        if store.version < current.version:
            raise PlanRejected(f"trust store v{store.version} is older than v{current.version} in force (a replay)")
        if store.version == current.version:
            if store != current:
                raise PlanRejected(f"a different trust store with the same version v{store.version} as the one "
                                   "in force: a new trust store needs a higher version")
            return None
    return store


def check_plan(envelope: Envelope, *, store: TrustStore, binding: Binding, in_force_version: int | None,
               now: datetime, templates: AdviceBook, profiles: ProfileSource) -> tuple[Plan, PlanDocument,
                                                                                        tuple[TrustedKey, TrustedKey]]:
    """Check a signed plan against the trust store and this box; return the plan, its document and signers.

    Two different people of `store` signed it (prescriber, verifier), it names this box's tenant,
    gateway and patient (`binding`), has not expired at `now`, is not issued more than a day ahead,
    is newer than `in_force_version`, and names a profile `profiles` knows. Raises `PlanRejected`
    (with the version once known) on the first check that fails.
    """
    try:
        signers = check_two_people(envelope, store, now)
        document = validate(PlanDocument, envelope.payload, "plan")
    except SignedError as exc:
        raise PlanRejected(str(exc)) from None
    v = document.version
    if document.tenant != binding.tenant:
        raise PlanRejected(f"plan v{v} is for tenant {document.tenant}, not {binding.tenant}", v)
    if document.gateway != binding.gateway:
        raise PlanRejected(f"plan v{v} is for gateway {document.gateway}, not {binding.gateway}", v)
    if document.patient != binding.patient:
        # The pseudonyms stay out of the reason: it goes to logs and events.
        raise PlanRejected(f"plan v{v} is for another patient than the one this gateway is provisioned for", v)
    if now >= document.expires:
        raise PlanRejected(f"plan v{v} expired on {document.expires:%Y-%m-%d %H:%M} UTC", v)
    if document.issued > now + ISSUED_AHEAD:
        raise PlanRejected(f"plan v{v} is issued {document.issued:%Y-%m-%d}, in the future: check the clocks", v)
    if in_force_version is not None and v <= in_force_version:
        raise PlanRejected(f"plan v{v} is not newer than v{in_force_version} in force (an old plan or a replay)", v)
    try:
        profile = profiles(document.profile)
    except GatewayError as exc:
        raise PlanRejected(f"plan v{v}: {exc}", v) from None
    try:
        plan = plan_from_document(document, profile, templates, envelope.hash)
    except ValidationError as exc:
        raise PlanRejected(f"plan v{v}: {describe(exc)}", v) from None
    except ValueError as exc:
        raise PlanRejected(f"plan v{v}: {exc}", v) from None
    return plan, document, signers


def verify_config(raw: bytes, *, binding: Binding, root: Ed25519PublicKey | None, in_force: InForce,
                  now: datetime, templates: AdviceBook, profiles: ProfileSource) -> Accepted:
    """Everything a down/config message must pass before anything in it is kept or applied. Raises
    PlanRejected and nothing else for any input."""
    try:
        message = ConfigMessage.parse(raw)
    except SignedError as exc:
        raise PlanRejected(str(exc), junk=True) from None
    try:
        return _verify(message, binding=binding, root=root, in_force=in_force, now=now, templates=templates,
                       profiles=profiles)
    except SignedError as exc:  # e.g. a number JSON allows but the canonical form cannot carry
        raise PlanRejected(str(exc)) from None


def _verify(message: ConfigMessage, *, binding: Binding, root: Ed25519PublicKey | None, in_force: InForce,
            now: datetime, templates: AdviceBook, profiles: ProfileSource) -> Accepted:
    new_store = None
    if message.trust_store is not None:
        new_store = _newer_trust_store(message.trust_store, root, binding, in_force.trust_store)
    store = new_store or in_force.trust_store
    if message.plan is None:
        if new_store is None:
            raise PlanRejected("the message carries only the trust store already in force")
        return Accepted(new_store, message.trust_store, None, None, None, None)
    if message.plan.hash == in_force.plan_hash:
        # The retained plan in force, delivered again on a reconnect: nothing to do.
        return Accepted(new_store, message.trust_store if new_store else None, None, None, None, None)
    if store is None:
        raise PlanRejected("no trust store is provisioned on this gateway ([plans] trust_store): no plan can be "
                           "accepted")
    plan, document, signers = check_plan(message.plan, store=store, binding=binding,
                                         in_force_version=in_force.plan_version, now=now, templates=templates,
                                         profiles=profiles)
    return Accepted(new_store, message.trust_store if new_store else None, plan, message.plan, document, signers)
