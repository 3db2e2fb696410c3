"""Every bad down/config message: rejected with a clear reason, a plan_rejected event sent, the plan in force kept
(in memory, in the sealed store, and after a restart)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.plans import PlanKeeper, PlanRejected, load_advice, load_profile, verify_config
from gateway.plans.keeper import JUNK_INTERVAL_S, OncePerInterval
from gateway.settings import ConfigError, PlansSection
from gateway.storage import SealedOutbox
from protocol import Envelope
from tests.plan_support import BINDING, NOW, ORDER, TENANT, Signer, Tenant, document, message, signed
from zoning import Override, standard_plan

ADVICE = load_advice()
Events = list[tuple[str, dict[str, Any]]]


class Box:
    """One gateway's plan keeper over a real sealed outbox file."""

    def __init__(self, tmp_path: Path, tenant: Tenant) -> None:
        self.tmp_path = tmp_path
        self.tenant = tenant
        self.kek = os.urandom(32)
        (tmp_path / "trust.json").write_bytes(tenant.trust_store(1).to_json())
        self.outbox = SealedOutbox(tmp_path / "outbox.sqlite3", self.kek)
        self.events: Events = []
        self.now = NOW
        self.keeper = self.start()

    def start(self) -> PlanKeeper:
        plans = PlansSection(trust_store=self.tmp_path / "trust.json", root_key=self.tenant.root_key_b64)
        keeper = PlanKeeper(binding=BINDING, plans=plans, outbox=self.outbox, templates=ADVICE,
                            standard=standard_plan(load_profile("standard-copd"), ADVICE, date(2026, 1, 1)),
                            now=lambda: self.now)
        keeper.events.subscribe(lambda kind, detail: self.events.append((kind, dict(detail))))
        return keeper

    def restarted(self) -> PlanKeeper:
        self.outbox.close()
        self.outbox = SealedOutbox(self.tmp_path / "outbox.sqlite3", self.kek)
        return self.start()


@pytest.fixture
def tenant() -> Tenant:
    return Tenant()


@pytest.fixture
async def box(tmp_path: Path, tenant: Tenant) -> AsyncIterator[Box]:
    box = Box(tmp_path, tenant)
    await box.keeper.receive(message(signed(document(1), tenant.gp, tenant.nurse)))
    assert box.events == [("plan_applied", box.events[0][1])]
    assert box.keeper.plan.version == 1
    box.events.clear()
    yield box
    box.outbox.close()


def _expired(s: Signer) -> Signer:
    return Signer(s.id, s.role, s.holder, s.key, not_after=NOW - timedelta(days=1))


BAD: dict[str, tuple[Callable[[Tenant], bytes], str]] = {
    "one signature only": (lambda t: message(signed(document(2), t.gp)), r"1 signature\(s\): a plan needs"),
    "no signature": (lambda t: message(signed(document(2))), r"0 signature\(s\)"),
    "two signatures by the same key": (lambda t: message(signed(document(2), t.gp, t.gp)),
                                       "both signatures are by key gp-hansen"),
    "two signatures by the same role": (lambda t: message(signed(document(2), t.gp, t.other_gp)),
                                        "both signatures are by a prescriber"),
    "three signatures": (lambda t: message(signed(document(2), t.gp, t.nurse, t.other_gp)), "exactly two"),
    "an unknown key": (lambda t: message(signed(document(2), t.gp, Signer("rn-x", "verifier", "Nurse X"))),
                       r"key rn-x is not in trust store v1 \(unknown or revoked\)"),
    "a key signing in a role it does not have": (
        lambda t: message(signed(document(2), t.gp, Signer("gp-berg", "verifier", "Dr. Per Berg, GP", t.other_gp.key))),
        "key gp-berg is a prescriber key but signed as verifier"),
    "an expired key": (lambda t: message(signed(document(2), t.gp, t.nurse),
                                         t.trust_store(2, [t.gp, _expired(t.nurse)])),
                       r"key rn-olsen \(verifier\) expired on 2026-11-24"),
    "a revoked key (left out of a newer trust store)": (
        lambda t: message(signed(document(2), t.gp, t.nurse), t.trust_store(2, [t.gp, t.other_gp])),
        r"key rn-olsen is not in trust store v2 \(unknown or revoked\)"),
    "an older version": (lambda t: message(signed(document(0 + 1, spo2_red=85), t.gp, t.nurse)),
                         "plan v1 is not newer than v1 in force"),
    "a plan for another gateway": (lambda t: message(signed(document(2, gateway="gw-0002"), t.gp, t.nurse)),
                                   "plan v2 is for gateway gw-0002, not gw-0001"),
    "a plan for another patient": (lambda t: message(signed(document(2, patient="p-000000"), t.gp, t.nurse)),
                                   "plan v2 is for another patient"),
    "a plan for another tenant": (lambda t: message(signed(document(2, tenant="other-kommune"), t.gp, t.nurse)),
                                  "plan v2 is for tenant other-kommune"),
    "an expired plan": (lambda t: message(signed(document(2, issued=NOW - timedelta(days=400),
                                                         expires=NOW - timedelta(days=35)), t.gp, t.nurse)),
                        "plan v2 expired on 2026-10-21"),
    "malformed JSON": (lambda t: message(signed(document(2), t.gp, t.nurse))[:-3], "not valid JSON"),
    "not UTF-8": (lambda t: b'{"v": 1, "plan": "\xff"}', "not UTF-8"),
    "wrong types (a version as text)": (lambda t: message(signed(dict(document(2).model_dump(mode="json"),
                                                                      version="2"), t.gp, t.nurse)),
                                        "plan: version: Input should be a valid integer"),
    "wrong types (a limit as a list)": (
        lambda t: message(signed(_with_limit(document(2), [88]), t.gp, t.nurse)), "plan: overrides.0.limit"),
    "an unknown field": (lambda t: message(signed(dict(document(2).model_dump(mode="json"), dose="2x"),
                                                  t.gp, t.nurse)), "plan: dose: Extra inputs are not permitted"),
    "a 10 MB payload": (lambda t: message(signed(dict(document(2).model_dump(mode="json"),
                                                      note="x" * 10_000_000), t.gp, t.nurse)),
                        "10,000,[0-9,]+ bytes is more than the 262,144"),
    "deep nesting (parser)": (lambda t: b"[" * 100_000 + b"]" * 100_000, "nested more than 16 levels deep"),
    "deep nesting (signed)": (lambda t: message(signed(dict(document(2).model_dump(mode="json"),
                                                            note=_nested(40)), t.gp, t.nurse)),
                              "nested more than 16 levels deep"),
    "a key given twice in one object": (
        lambda t: message(signed(document(2), t.gp, t.nurse)).replace(b'{"v":1,', b'{"v":1,"v":1,', 1),
        "key 'v' appears twice"),
    "NaN": (lambda t: b'{"v": NaN}', "NaN is not a JSON number"),
    "a trust store not signed by the root": (
        lambda t: message(signed(document(2), t.gp, t.nurse), t.trust_store(2, root=Ed25519PrivateKey.generate())),
        "the trust store is not signed by this tenant's root key"),
    "an older trust store (replayed)": (
        lambda t: message(signed(document(2), t.gp, t.nurse), t.trust_store(0 + 1, [t.gp])),
        "a different trust store with the same version v1"),
    "a profile other than the one shipped": (
        lambda t: message(signed(document(2, profile_hash="sha256:" + "0" * 64), t.gp, t.nurse)),
        "whose rules differ from the one shipped on this gateway"),
    "an override of a rule the profile does not have": (
        lambda t: message(signed(_with_rule(document(2), "spo2.purple"), t.gp, t.nurse)),
        "does not have: spo2.purple"),
    "advice that drops the emergency notice": (
        lambda t: message(signed(dict(document(2).model_dump(mode="json"),
                                      advice={"emergency": {"nb": "Ring fastlegen.", "en": "Call your GP."}}),
                                 t.gp, t.nurse)),
        "emergency' text naming 113"),
    "neither a plan nor a trust store": (lambda t: b'{"v": 1}', "carries neither a plan nor a trust store"),
    # Issue 19.10: JSON `true` counted as 1, and a plan at 2^53 - 1 left no newer version to sign.
    "a format version of true": (
        lambda t: message(signed(document(2), t.gp, t.nurse)).replace(b'{"v":1,', b'{"v":true,', 1),
        "v: must be the number 1"),
    "a plan version of true": (
        lambda t: message(signed(dict(document(2).model_dump(mode="json"), version=True), t.gp, t.nurse)),
        "plan: version: Input should be a valid integer"),
    "a plan version at 2^53 - 1": (lambda t: message(signed(dict(document(2).model_dump(mode="json"),
                                                                 version=2**53 - 1), t.gp, t.nurse)),
                                   "plan: version: Input should be less than or equal to 2147483647"),
    "an implausible limit (a typo)": (lambda t: message(signed(_with_limit(document(2), "880"), t.gp, t.nurse)),
                                      "override of spo2.red: 880 is outside the plausible range 50 to 100 % for spo2"),
    # Issue 18.3: the safety envelope, ordered bands, limits in another unit.
    "a red bound beyond the safety envelope": (
        lambda t: message(signed(document(2, spo2_red=80), t.gp, t.nurse)),
        r"plan v2: spo2.red \(<= 80 %\) is beyond the safety envelope: spo2 <= 83 is always red "
        r"\(envelope.spo2.low, NEWS2 score 3\)"),
    "a red rule the envelope covers switched off": (
        lambda t: message(signed(document(2, spo2_red=None, overrides=(_override("spo2.red", None),)), t.gp, t.nurse)),
        "plan v2: spo2.red cannot be switched off: the safety envelope keeps spo2 <= 83 red"),
    "bands out of order (red above yellow)": (
        lambda t: message(signed(document(2, spo2_red=96), t.gp, t.nurse)),
        r"plan v2: bands out of order: spo2.yellow \(<= 95 %\) is not inside spo2.red \(<= 96 %\)"),
    "a weight gain in pounds": (
        lambda t: message(signed(document(2, spo2_red=None, profile="standard-heart-failure",
                                          overrides=(_override("weight.gain.red", "4.4"),)), t.gp, t.nurse)),
        r"a change of 4.4 is outside the plausible range 0.2 to 4 kg for weight \(pounds\? 1 kg = 2.2 lb\)"),
    "a limit that is not a number": (lambda t: message(signed(_with_limit(document(2), "NaN"), t.gp, t.nurse)),
                                     "plan: overrides.0.limit: Input should be a finite number"),
}


def _override(rule: str, limit: str | None) -> Override:
    if limit is None:
        return Override(rule=rule, off=True, reason=ORDER)
    return Override(rule=rule, limit=Decimal(limit), reason=ORDER)


def _with_limit(doc: Any, limit: Any) -> dict[str, Any]:
    payload: dict[str, Any] = doc.model_dump(mode="json")
    payload["overrides"][0]["limit"] = limit
    return payload


def _with_rule(doc: Any, rule: str) -> dict[str, Any]:
    payload: dict[str, Any] = doc.model_dump(mode="json")
    payload["overrides"][0]["rule"] = rule
    return payload


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("case", list(BAD))
async def test_a_bad_message_is_rejected_with_its_reason_and_the_plan_in_force_stays(box: Box, case: str) -> None:
    build, reason = BAD[case]
    in_force = box.keeper.plan
    await box.keeper.receive(build(box.tenant))
    assert [kind for kind, _ in box.events] == ["plan_rejected"], box.events
    detail = box.events[0][1]
    assert re.search(reason, str(detail["reason"])), detail
    assert detail["in_force"] == "plan v1"
    assert box.keeper.plan is in_force
    kept = box.outbox.latest_document("plan")
    assert kept is not None and kept[0] == 1
    assert box.restarted().plan.plan_hash == in_force.plan_hash


async def test_the_same_rejected_message_delivered_again_is_reported_once(box: Box) -> None:
    bad = message(signed(document(2), box.tenant.gp))
    for _ in range(3):
        await box.keeper.receive(bad)
    assert [kind for kind, _ in box.events] == ["plan_rejected"]


def test_a_flipped_bit_anywhere_in_the_message_is_rejected(tenant: Tenant) -> None:
    """Every byte of a message carrying a plan and a trust store, one at a time (XOR 1): never accepted."""
    raw = message(signed(document(2), tenant.gp, tenant.nurse), tenant.trust_store(2))
    store = tenant.opened_store(1)
    in_force = _in_force(store)

    def check(data: bytes) -> None:
        verify_config(data, binding=BINDING, root=tenant.root.public_key(), in_force=in_force, now=NOW,
                      templates=ADVICE, profiles=load_profile)

    check(raw)  # the intact message passes
    accepted = 0
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 1
        try:
            check(bytes(flipped))
            accepted += 1
        except PlanRejected:
            pass
    assert accepted == 0


def _in_force(store: Any) -> Any:
    from gateway.plans import InForce

    return InForce(store, 1, "sha256:" + "1" * 64)


def test_reasons_never_name_the_patient(tenant: Tenant) -> None:
    raw = message(signed(document(2, patient="p-secret1"), tenant.gp, tenant.nurse))
    with pytest.raises(PlanRejected) as caught:
        verify_config(raw, binding=BINDING, root=tenant.root.public_key(), in_force=_in_force(tenant.opened_store()),
                      now=NOW, templates=ADVICE, profiles=load_profile)
    assert "p-secret1" not in caught.value.reason and "p-7f3a9c" not in caught.value.reason


def unchecked_store(tenant: Tenant, version: int, keys: list[Signer]) -> Envelope:
    """A root-signed trust store built without the model's checks: what a broken or hostile tool could send."""
    payload = {"kind": "dho-trust-store", "tenant": TENANT, "version": version,
               "issued": (NOW - timedelta(days=1)).isoformat(), "keys": [k.trusted().model_dump(mode="json")
                                                                         for k in keys]}
    return Envelope(payload=payload).signed_by(tenant.root, "root-2026", "root")


@pytest.mark.parametrize("holder", ["Dr. Kari Hansen, GP", "Dr. Kari Hansen, GP ", "dr. kari  hansen, gp."])
def test_one_person_cannot_hold_both_roles_whatever_the_spelling(tmp_path: Path, tenant: Tenant, holder: str) -> None:
    """Issue 19.10: a trailing space made a second person. A trust store naming one person (case, spacing and
    punctuation aside) as both prescriber and verifier is refused outright: such a person could order and
    check their own plan. The box refuses to start on it; a newer one sent down is refused too."""
    box = Box(tmp_path, tenant)
    twin = Signer("gp-hansen-verify", "verifier", holder)
    with pytest.raises(ValueError, match="holds both a prescriber and a verifier key"):
        tenant.trust_store(1, [tenant.gp, twin])  # the plan tool cannot even make one
    (tmp_path / "trust.json").write_bytes(unchecked_store(tenant, 1, [tenant.gp, twin]).to_json())
    with pytest.raises(ConfigError, match="holds both a prescriber and a verifier key: one person, one role"):
        box.start()
    box.outbox.close()


async def test_a_newer_trust_store_giving_one_person_both_roles_is_refused(box: Box) -> None:
    twin = Signer("gp-hansen-verify", "verifier", " DR. KARI HANSEN, GP")
    await box.keeper.receive(message(None, unchecked_store(box.tenant, 2, [box.tenant.gp, twin])))
    assert [kind for kind, _ in box.events] == ["plan_rejected"]
    assert "holds both a prescriber and a verifier key" in str(box.events[0][1]["reason"])


async def test_a_flood_of_junk_on_down_config_is_said_once_per_interval_with_a_count(
        box: Box, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 19.10: each junk message logged a warning and made a durable event."""
    clock = [0.0]
    box.keeper._junk_said = OncePerInterval(JUNK_INTERVAL_S, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="gateway.plans.keeper"):
        for i in range(50):
            await box.keeper.receive(f"junk {i}".encode())
    assert len(box.events) == 1 and box.events[0][1]["junk_count"] == 1
    assert len([r for r in caplog.records if "not config messages" in r.getMessage()]) == 1
    clock[0] += JUNK_INTERVAL_S
    await box.keeper.receive(b"junk again")
    assert len(box.events) == 2 and box.events[1][1]["junk_count"] == 50  # the 49 held back, and this one
    await box.keeper.receive(message(signed(document(2), box.tenant.gp)))  # a real plan, refused: said at once
    assert len(box.events) == 3 and "1 signature(s)" in str(box.events[2][1]["reason"])


def test_the_message_bytes_are_what_the_central_tool_writes(tenant: Tenant) -> None:
    """Whitespace and key order in transit do not matter: the signature covers the canonical form."""
    raw = message(signed(document(2), tenant.gp, tenant.nurse))
    pretty = json.dumps(json.loads(raw), indent=4, sort_keys=False).encode()
    accepted = verify_config(pretty, binding=BINDING, root=tenant.root.public_key(),
                             in_force=_in_force(tenant.opened_store()), now=NOW, templates=ADVICE,
                             profiles=load_profile)
    assert accepted.plan is not None and accepted.plan.version == 2


async def test_a_newer_trust_store_adds_and_revokes_keys_and_is_kept_over_the_provisioned_one(box: Box) -> None:
    t = box.tenant
    new_nurse = Signer("rn-lie", "verifier", "Nurse Kari Lie")
    await box.keeper.receive(message(signed(document(2), t.gp, new_nurse), t.trust_store(2, [t.gp, new_nurse])))
    assert [kind for kind, _ in box.events] == ["trust_store_updated", "plan_applied"]
    assert (box.keeper.plan.version, box.keeper.trust_store and box.keeper.trust_store.version) == (2, 2)
    # After a restart the kept v2 wins over the provisioned v1 file: the revoked nurse stays revoked.
    keeper = box.restarted()
    assert keeper.trust_store is not None and keeper.trust_store.version == 2
    box.keeper, box.events[:] = keeper, []
    await keeper.receive(message(signed(document(3), t.gp, t.nurse)))
    assert "key rn-olsen is not in trust store v2" in str(box.events[-1][1]["reason"])
    assert keeper.plan.version == 2


async def test_a_key_not_yet_valid_is_refused(box: Box) -> None:
    t = box.tenant
    early = Signer("rn-new", "verifier", "Nurse New", not_before=NOW + timedelta(days=2))
    await box.keeper.receive(message(signed(document(2), t.gp, early), t.trust_store(2, [t.gp, early])))
    assert box.events[-1][0] == "plan_rejected"
    assert "key rn-new (verifier) is not valid before 2026-11-27" in str(box.events[-1][1]["reason"])
    # A message is all or nothing: the trust store that came with the refused plan is not kept either.
    assert box.keeper.trust_store is not None and box.keeper.trust_store.version == 1


def test_an_expired_plan_in_force_stays_and_the_status_says_so(tmp_path: Path, tenant: Tenant) -> None:
    box = Box(tmp_path, tenant)
    assert box.keeper.faults() == []
    asyncio.run(box.keeper.receive(message(signed(document(1), tenant.gp, tenant.nurse))))
    box.now = NOW + timedelta(days=400)
    assert box.keeper.plan.version == 1
    assert box.keeper.faults() == ["plan v1 expired on 2027-11-25: it stays in force until the doctor's renewed "
                                   "plan arrives"]
    box.outbox.close()


async def test_a_trust_store_sent_with_the_plan_in_force_only_updates_the_trust_store(box: Box) -> None:
    """What `dho-central plan publish-trust-store` sends: the new store and the gateway's last plan."""
    t = box.tenant
    in_force = box.keeper.plan
    await box.keeper.receive(message(signed(document(1), t.gp, t.nurse), t.trust_store(2, [t.gp, t.other_gp])))
    assert box.events == [("trust_store_updated", {"version": 2, "keys": 2})]
    assert box.keeper.plan is in_force


async def test_a_kit_given_to_another_patient_without_a_wipe_does_not_start_with_the_old_plan(box: Box) -> None:
    from dataclasses import replace

    from gateway.plans import keeper as keeper_module
    from gateway.settings import ConfigError

    box.outbox.close()
    box.outbox = SealedOutbox(box.tmp_path / "outbox.sqlite3", box.kek)
    with pytest.raises(ConfigError, match="is for another patient or gateway than \\[gateway\\] names: wipe the kit"):
        keeper_module.PlanKeeper(
            binding=replace(BINDING, patient="p-next01"), outbox=box.outbox, templates=ADVICE,
            plans=PlansSection(trust_store=box.tmp_path / "trust.json", root_key=box.tenant.root_key_b64),
            standard=standard_plan(load_profile("standard-copd"), ADVICE, date(2026, 1, 1)))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


_FUZZ_TENANT = Tenant()
_FUZZ_GOOD = json.loads(message(signed(document(2), _FUZZ_TENANT.gp, _FUZZ_TENANT.nurse)))
_FUZZ_IN_FORCE = _in_force(_FUZZ_TENANT.opened_store())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=JSON, store=JSON, raw=st.binary(max_size=200))
def test_whatever_arrives_the_only_outcome_is_one_reason(plan: Any, store: Any, raw: bytes) -> None:
    """Never a traceback: any JSON in any place, or any bytes, is refused with a PlanRejected line."""
    good = _FUZZ_GOOD["plan"]
    candidates = [
        raw,
        json.dumps({"v": 1, "plan": plan}).encode(),
        json.dumps({"v": 1, "plan": {"v": 1, "payload": plan, "signatures": good["signatures"]}}).encode(),
        json.dumps({"v": 1, "plan": {**good, "payload": {**good["payload"], "overrides": plan}}}).encode(),
    ]
    if store is not None:  # null is "no trust store", and the plan beside it is good
        candidates.append(json.dumps({"v": 1, "plan": good, "trust_store": store}).encode())
    for candidate in candidates:
        with pytest.raises(PlanRejected):
            verify_config(candidate, binding=BINDING, root=_FUZZ_TENANT.root.public_key(), in_force=_FUZZ_IN_FORCE,
                          now=NOW, templates=ADVICE, profiles=load_profile)


def test_a_kept_plan_that_crosses_the_envelope_starts_judges_within_it_and_the_status_names_the_rule(
        tmp_path: Path, tenant: Tenant) -> None:
    """A plan applied before this release (spo2.red at <= 80) must not stop the box on upgrade: it stays in
    force, readings beyond the envelope are red anyway, and the status says which rule the doctor must renew."""
    box = Box(tmp_path, tenant)
    old = signed(document(1, spo2_red=80), tenant.gp, tenant.nurse)  # document() builds it unchecked
    record = {"envelope": old.model_dump(mode="json"), "profile": load_profile("standard-copd").model_dump(mode="json")}
    box.outbox.keep_document("plan", 1, json.dumps(record).encode())
    keeper = box.restarted()
    assert keeper.plan.version == 1 and keeper.plan.problems
    [fault] = keeper.faults()
    assert fault.startswith("plan v1 would be refused today: spo2.red (<= 80 %) is beyond the safety envelope")
    assert "readings beyond the safety envelope are red regardless; the doctor must renew the plan" in fault
    box.outbox.close()
