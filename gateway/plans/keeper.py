"""The plan in force: loaded sealed at start-up, replaced only by a down/config message that passes every check.

A plan (or trust store) is committed to the sealed store before it is used, so a restart comes back
with the last plan applied, never with the standard profile. Verification runs in a thread: a reading
arriving meanwhile is judged by the plan in force until the new one is stored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.listeners import Listeners
from gateway.plans.standard import load_profile
from gateway.plans.verify import Accepted, Binding, InForce, PlanRejected, verify_config
from gateway.settings import ConfigError, PlansSection
from gateway.storage import OutboxUnavailable, SealedOutbox
from protocol import Envelope, EventKind, SignedError, TrustStore, open_trust_store, signers, validate
from zoning import AdviceBook, Plan, PlanDocument, Profile, plan_from_document

log = logging.getLogger(__name__)

# The names under which the sealed outbox keeps the plan in force and the trust store (keep_document).
PLAN_DOCUMENT = "plan"
TRUST_STORE_DOCUMENT = "trust-store"
_REJECTIONS_REMEMBERED = 64
JUNK_INTERVAL_S = 300.0


class OncePerInterval:
    """Counts occurrences; `seen()` returns how many to report when one is due (the first at once, then at
    most one report per `interval_s`, carrying the ones counted since), else None."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self._clock = interval_s, clock
        self._said_at: float | None = None
        self._counted = 0

    def seen(self) -> int | None:
        """One more occurrence; the count to report now, or None while the interval runs."""
        self._counted += 1
        now = self._clock()
        if self._said_at is not None and now - self._said_at < self.interval_s:
            return None
        self._said_at, count, self._counted = now, self._counted, 0
        return count

EventDetail = dict[str, str | int | float]


def root_key(plans: PlansSection) -> Ed25519PublicKey | None:
    if plans.root_key is None:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(plans.root_key, validate=True))
    except (binascii.Error, ValueError):
        raise ConfigError("plans.root_key: not an Ed25519 public key (32 bytes, base64)") from None


def _provisioned_trust_store(path: Path, root: Ed25519PublicKey | None, tenant: str) -> TrustStore:
    if root is None:
        raise ConfigError("plans.trust_store is set but plans.root_key is not: the trust store cannot be checked")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"plans.trust_store: cannot read {path}: {exc.strerror}") from None
    try:
        store = open_trust_store(Envelope.parse(raw), root)
    except SignedError as exc:
        raise ConfigError(f"plans.trust_store: {path}: {exc}") from None
    if store.tenant != tenant:
        raise ConfigError(f"plans.trust_store: {path} is for tenant {store.tenant}, not {tenant}")
    return store


def check_provisioned_trust(plans: PlansSection, tenant: str) -> TrustStore | None:
    """The provisioned trust store (`[plans] trust_store`), checked exactly as `run` checks it at start:
    readable, signed by `[plans] root_key`, for this tenant. None when none is configured. Raises
    ConfigError with the line `run` would stop on, so `kit provision`, `kit check` and `status` say it
    before the kit leaves the office."""
    if plans.trust_store is None:
        return None
    return _provisioned_trust_store(plans.trust_store, root_key(plans), tenant)


def _stored_plan(body: bytes, templates: AdviceBook) -> tuple[Plan, PlanDocument]:
    """A kept plan rebuilt from its own record: the envelope and the profile it was judged on, so a
    package update that changes a standard profile does not change the plan in force."""
    record = json.loads(body)
    envelope = validate(Envelope, record["envelope"], "stored plan")
    document = validate(PlanDocument, envelope.payload, "stored plan")
    profile = Profile.model_validate(record["profile"])
    # Applied once, by this or an earlier release: a plan that crosses today's safety envelope is kept (the
    # envelope still makes every reading beyond it red) and the status says so, rather than stopping the box.
    return plan_from_document(document, profile, templates, envelope.hash, kept=True), document


class PlanKeeper:
    """The plan and trust store in force: loaded from the sealed outbox, replaced by a verified down/config.

    Starts with the plan kept in `outbox` or, if none, `standard`. Raises `ConfigError` at construction
    when the kept plan cannot be used or is for another patient or gateway than `binding`. After that,
    `receive` never raises: each refusal is a `plan_rejected` event (`events`), each applied plan goes
    to every one of `listeners`.
    """

    def __init__(
        self,
        *,
        binding: Binding,
        plans: PlansSection,
        outbox: SealedOutbox,
        standard: Plan,
        templates: AdviceBook,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._binding = binding
        self._root = root_key(plans)
        self._outbox = outbox
        self._templates = templates
        self._now = now
        # Who hears of what (each `subscribe(listener)` returns its unsubscribe; a failing listener is logged).
        self.events: Listeners[[EventKind, EventDetail]] = Listeners("plan event")  # for the central service
        self.applied: Listeners[[Plan]] = Listeners("plan applied")  # the new plan, once it is in force
        self._rejected: deque[str] = deque(maxlen=_REJECTIONS_REMEMBERED)
        self._junk_said = OncePerInterval(JUNK_INTERVAL_S)
        self.trust_store = self._load_trust_store(plans)
        self.plan = standard
        self.document: PlanDocument | None = None
        kept = outbox.latest_document(PLAN_DOCUMENT)
        if kept is not None:
            try:
                self.plan, self.document = _stored_plan(kept[1], templates)
            except (ValueError, KeyError, SignedError) as exc:
                raise ConfigError(f"the stored plan v{kept[0]} cannot be used ({exc}); the central service must "
                                  "publish the plan again after a kit wipe") from None
            d = self.document
            if (d.tenant, d.gateway, d.patient) != (binding.tenant, binding.gateway, binding.patient):
                # A kit handed on without a wipe: the last patient's thresholds must not judge the next one.
                raise ConfigError(f"the plan kept on this kit (v{d.version}) is for another patient or gateway than "
                                  "[gateway] names: wipe the kit (dho-gateway wipe) before it serves a new patient")
            log.info("plan v%d in force (%s)", self.plan.version, self.plan.plan_hash)

    def _load_trust_store(self, plans: PlansSection) -> TrustStore | None:
        kept = self._outbox.latest_document(TRUST_STORE_DOCUMENT)
        stored = None
        if kept is not None and self._root is not None:
            try:
                stored = open_trust_store(Envelope.parse(kept[1]), self._root)
            except SignedError as exc:
                log.error("the kept trust store v%d is not usable (%s); using the provisioned one", kept[0], exc)
        provisioned = None
        if plans.trust_store is not None:
            provisioned = _provisioned_trust_store(plans.trust_store, self._root, self._binding.tenant)
        # The newer one wins: a provisioned file older than what the central service sent must not revoke it.
        candidates = [s for s in (stored, provisioned) if s is not None]
        return max(candidates, key=lambda s: s.version, default=None)

    @property
    def in_force(self) -> InForce:
        return InForce(self.trust_store, self.plan.signed_version, self.plan.plan_hash)

    def faults(self) -> list[str]:
        """An expired plan stays in force (dropping it would judge by the standard profile, which no one
        ordered for this patient); the status says so until a new plan arrives. So does a kept plan that
        today's checks would refuse (the safety envelope, ordered bands), with each rule named."""
        faults = []
        if self.document is not None and self._now() >= self.document.expires:
            faults.append(f"plan v{self.document.version} expired on {self.document.expires:%Y-%m-%d}: it stays in "
                          "force until the doctor's renewed plan arrives")
        faults += [f"plan v{self.plan.version} would be refused today: {problem}; readings beyond the safety envelope "
                   "are red regardless; the doctor must renew the plan" for problem in self.plan.problems]
        return faults

    async def receive(self, raw: bytes) -> None:
        """One down/config message (untrusted bytes). Never raises: a failure is a plan_rejected event."""
        seen = hashlib.sha256(raw).hexdigest()
        if seen in self._rejected:
            return  # the same refused message, retained and delivered again on a reconnect: said once
        try:
            accepted = await asyncio.to_thread(
                verify_config, raw, binding=self._binding, root=self._root, in_force=self.in_force,
                now=self._now(), templates=self._templates, profiles=load_profile,
            )
            await asyncio.to_thread(self._keep, accepted)
        except PlanRejected as exc:
            if exc.junk:
                self._junk(seen, exc.reason)
            else:
                self._reject(seen, exc.reason, exc.version)
            return
        except OutboxUnavailable as exc:
            self._reject(seen, f"the plan could not be stored, so it is not applied: {exc}", None)
            self._rejected.pop()  # a storage fault passes: the same message may be tried again
            return
        except Exception as exc:  # a bug must not end the receive loop, and must not keep a half-checked plan
            log.exception("checking a down/config message failed")
            self._reject(seen, f"the gateway could not check it: {type(exc).__name__}", None)
            return
        self._apply(accepted)

    def _keep(self, accepted: Accepted) -> None:
        if accepted.trust_store is not None and accepted.trust_store_envelope is not None:
            self._outbox.keep_document(TRUST_STORE_DOCUMENT, accepted.trust_store.version,
                                       accepted.trust_store_envelope.to_json())
        if accepted.plan is not None and accepted.plan_envelope is not None:
            record = {"envelope": accepted.plan_envelope.model_dump(mode="json"),
                      "profile": accepted.plan.profile.model_dump(mode="json")}
            self._outbox.keep_document(PLAN_DOCUMENT, accepted.plan.version, json.dumps(record).encode())

    def _apply(self, accepted: Accepted) -> None:
        if accepted.trust_store is not None:
            old = self.trust_store.version if self.trust_store else None
            self.trust_store = accepted.trust_store
            log.warning("trust store v%d in force (was %s)", accepted.trust_store.version, old and f"v{old}")
            self.events.notify("trust_store_updated", {"version": accepted.trust_store.version,
                                                       "keys": len(accepted.trust_store.keys)})
        plan, signed = accepted.plan, accepted.signers
        if plan is None or signed is None:
            return
        self.plan, self.document = plan, accepted.document
        self.applied.notify(plan)
        assert plan.plan_hash is not None
        log.warning("plan v%d applied (%s), signed by %s", plan.version, plan.plan_hash, signers(signed))
        self.events.notify("plan_applied", {"version": plan.version, "hash": plan.plan_hash,
                                            "rules_hash": plan.rules_hash, "prescriber_key": signed[0].id,
                                            "verifier_key": signed[1].id})

    def _junk(self, seen: str, reason: str) -> None:
        """Bytes on down/config that are no config message at all: a flood of them must not become a flood
        of log lines and durable events (issue 19.10). Said once per interval, with how many came."""
        self._rejected.append(seen)
        count = self._junk_said.seen()
        if count is None:
            return
        log.warning("down/config: %d message(s) that are not config messages (the last: %s); ignored",
                    count, reason)
        in_force = f"plan v{self.plan.version}" if self.plan.plan_hash else f"standard profile {self.plan.id}"
        self.events.notify("plan_rejected", {"reason": f"not a config message: {reason}", "in_force": in_force,
                                             "junk_count": count})

    def _reject(self, seen: str, reason: str, version: int | None) -> None:
        self._rejected.append(seen)
        in_force = f"plan v{self.plan.version}" if self.plan.plan_hash else f"standard profile {self.plan.id}"
        log.warning("down/config rejected: %s; %s stays in force", reason, in_force)
        detail: dict[str, str | int | float] = {"reason": reason, "in_force": in_force}
        if version is not None:
            detail["version"] = version
        self.events.notify("plan_rejected", detail)

