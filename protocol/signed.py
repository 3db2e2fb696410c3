r"""Signed documents: RFC 8785 canonical JSON, Ed25519 signatures with key id and role, the tenant trust store.

Shared by the gateway (which verifies) and the central plan tool (which signs and verifies), so both
sides run the same code. What is signed (docs/plans.md, docs/decisions/0004-plan-signing.md):

    b"dho-signed/v1\n" + role + b"\n" + key id + b"\n" + RFC 8785 canonical JSON of the payload

Role and key id are inside the signed bytes, so a signature made "as verifier" cannot be relabelled as
a prescriber's, nor attributed to another key id. Untrusted bytes are bounded before anything else looks
at them: size, UTF-8, duplicate keys, NaN/Infinity, nesting depth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, TypeVar

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_DOCUMENT_BYTES = 256 * 1024  # a typical signed plan is ~3 KB (bench/plans.py); a trust store a few KB
MAX_DEPTH = 16  # a plan nests 5 levels deep; anything much deeper is not one
# Versions of plans and trust stores: far below 2^53 (JSON numbers above it lose digits in other languages,
# and a plan at 2^53 - 1 would leave no newer version to sign) and far above any real count.
MAX_VERSION = 2**31 - 1
_DOMAIN = b"dho-signed/v1\n"
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

SignerRole = Literal["prescriber", "verifier"]
Role = Literal["prescriber", "verifier", "root"]


class SignedError(ValueError):
    """A document that is not accepted; the message is one line saying why."""


def _reject_constant(name: str) -> Any:
    raise SignedError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # Two parsers could each pick a different one: the signer would see one plan, the box another.
            raise SignedError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_json(raw: bytes, *, limit: int = MAX_DOCUMENT_BYTES) -> Any:
    """Untrusted bytes -> JSON value, or SignedError naming what is wrong."""
    if len(raw) > limit:
        raise SignedError(f"{len(raw):,} bytes is more than the {limit:,} a signed document may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SignedError("not UTF-8 text") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise SignedError(f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise SignedError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if _depth(value) > MAX_DEPTH:
        raise SignedError(f"nested more than {MAX_DEPTH} levels deep")
    return value


def canonical(value: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise SignedError(f"cannot be put in canonical form: {exc}") from None


def digest(value: Any) -> str:
    """`sha256:<hex>` of the canonical form: the same document always has the same hash."""
    return "sha256:" + hashlib.sha256(canonical(value)).hexdigest()


def _signing_input(role: Role, key_id: str, payload: dict[str, Any]) -> bytes:
    return _DOMAIN + role.encode() + b"\n" + key_id.encode() + b"\n" + canonical(payload)


def _b64(text: str) -> bytes:
    """Strict base64: the one spelling of these bytes, so a flipped padding bit is not a second valid form."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise binascii.Error("not canonical base64")
    return raw


def encode_key(key: Ed25519PublicKey) -> str:
    """The raw 32 bytes of an Ed25519 public key, base64: how a trust store writes it."""
    return base64.b64encode(key.public_bytes_raw()).decode()


def decode_key(text: str) -> Ed25519PublicKey:
    """The Ed25519 public key `encode_key` wrote; `SignedError` for anything but 32 bytes of canonical base64."""
    try:
        return Ed25519PublicKey.from_public_bytes(_b64(text))
    except (binascii.Error, ValueError):
        raise SignedError("a public key must be 32 bytes of Ed25519, base64") from None


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Signature(_Strict):
    """One signature of an envelope: the signer's key id and role (both inside the signed bytes), and the signature."""

    key: str = Field(pattern=_ID, description="key id in the trust store")
    role: Role = Field(description="what the signer signs as; inside the signed bytes")
    sig: str = Field(min_length=86, max_length=88, description="Ed25519 signature, base64 (64 bytes)")


class Envelope(_Strict):
    """A payload (a JSON object) and the signatures over its canonical form."""

    v: Literal[1] = 1
    payload: dict[str, Any]
    signatures: tuple[Signature, ...] = Field(default=(), max_length=8)

    @classmethod
    def parse(cls, raw: bytes) -> Envelope:
        """An envelope from untrusted bytes (bounded by `parse_json`); `SignedError` says what is wrong."""
        return validate(cls, parse_json(raw), "not a signed envelope")

    @property
    def hash(self) -> str:
        """The hash of the signed payload (signatures left out): names the document."""
        return digest(self.payload)

    def signed_by(self, key: Ed25519PrivateKey, key_id: str, role: Role) -> Envelope:
        """This envelope with one more signature."""
        sig = base64.b64encode(key.sign(_signing_input(role, key_id, self.payload))).decode()
        return self.model_copy(update={"signatures": (*self.signatures, Signature(key=key_id, role=role, sig=sig))})

    def to_json(self) -> bytes:
        """The envelope as RFC 8785 canonical JSON bytes (what is sent and kept)."""
        return canonical(self.model_dump(mode="json"))


def check_signature(envelope: Envelope, signature: Signature, key: Ed25519PublicKey) -> None:
    """Verify one signature over the envelope's payload with `key`; `SignedError` when it does not match."""
    try:
        key.verify(_b64(signature.sig), _signing_input(signature.role, signature.key, envelope.payload))
    except (binascii.Error, InvalidSignature):
        raise SignedError(
            f"the signature by key {signature.key} does not match the document (altered after signing?)"
        ) from None


_M = TypeVar("_M", bound=BaseModel)


def validate(model: type[_M], value: Any, what: str) -> _M:
    """A parsed JSON value as `model`, strictly (no "5" for 5), with JSON's own types (ISO dates)."""
    try:
        # Through JSON text rather than Python objects: strict mode then still reads ISO dates and lists.
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SignedError(f"{what}: not JSON: {exc}") from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise SignedError(f"{what}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """The first problem of a pydantic ValidationError in one line (`where: what`), with a count of the others."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


class TrustedKey(_Strict):
    """A signing key of the tenant's trust store: its holder (a person), role and validity period.

    `not_before` and `not_after` are aware datetimes; a key is usable in `[not_before, not_after)`.
    """

    id: str = Field(pattern=_ID)
    role: SignerRole
    holder: str = Field(min_length=1, max_length=200, description="the person, e.g. 'Dr. Kari Hansen, GP'")
    public_key: str = Field(description="Ed25519 public key, base64 (32 bytes)")
    not_before: AwareDatetime
    not_after: AwareDatetime

    @model_validator(mode="after")
    def _usable(self) -> TrustedKey:
        decode_key(self.public_key)
        if self.not_after <= self.not_before:
            raise ValueError(f"key {self.id}: not_after must be later than not_before")
        return self


class TrustStore(_Strict):
    """The tenant's signing keys, signed by the tenant's offline root key.

    A newer version replaces an older one: a key left out of it is revoked.
    """

    kind: Literal["dho-trust-store"] = "dho-trust-store"
    tenant: str = Field(pattern=_ID)
    version: int = Field(ge=1, le=MAX_VERSION)
    issued: AwareDatetime
    keys: tuple[TrustedKey, ...] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> TrustStore:
        ids = [k.id for k in self.keys]
        keys = [k.public_key for k in self.keys]
        if len(set(ids)) != len(ids) or len(set(keys)) != len(keys):
            raise ValueError("every key id and every public key may appear only once")
        roles: dict[str, set[str]] = {}
        for k in self.keys:
            roles.setdefault(holder_identity(k.holder), set()).add(k.role)
        for k in self.keys:
            if {"prescriber", "verifier"} <= roles[holder_identity(k.holder)]:
                # One person with both roles could order and check their own plan: the two-person rule undone.
                raise ValueError(f"{k.holder.strip()!r} holds both a prescriber and a verifier key: one person, "
                                 "one role")
        return self

    def key(self, key_id: str) -> TrustedKey | None:
        """The key with this id, or None (unknown, or revoked by being left out of this version)."""
        return next((k for k in self.keys if k.id == key_id), None)


def open_trust_store(envelope: Envelope, root: Ed25519PublicKey) -> TrustStore:
    """The trust store inside `envelope`, if the tenant's root key signed it."""
    roots = [s for s in envelope.signatures if s.role == "root"]
    if len(roots) != 1 or len(envelope.signatures) != 1:
        raise SignedError("the trust store must carry exactly one signature, the tenant root key's")
    try:
        check_signature(envelope, roots[0], root)
    except SignedError:
        raise SignedError("the trust store is not signed by this tenant's root key") from None
    return validate(TrustStore, envelope.payload, "trust store")


def _usable_key(store: TrustStore, signature: Signature, now: datetime) -> TrustedKey:
    key = store.key(signature.key)
    if key is None:
        raise SignedError(f"key {signature.key} is not in trust store v{store.version} (unknown or revoked)")
    if key.role != signature.role:
        raise SignedError(f"key {key.id} is a {key.role} key but signed as {signature.role}")
    if now >= key.not_after:
        raise SignedError(f"key {key.id} ({key.role}) expired on {key.not_after:%Y-%m-%d}")
    if now < key.not_before:
        raise SignedError(f"key {key.id} ({key.role}) is not valid before {key.not_before:%Y-%m-%d}")
    return key


def same_person(a: str, b: str) -> bool:
    """Whether two holder names name the same person, case, Unicode forms, spacing and punctuation aside.

    "Kari  Hansen " and "kari hansen." are one person (a trailing space made two, issue 19.10).
    """
    return holder_identity(a) == holder_identity(b)


def holder_identity(holder: str) -> str:
    """The normalised form two holder names are compared by (NFKC, case-folded, letters and digits only)."""
    folded = unicodedata.normalize("NFKC", holder).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in folded).split())


def check_two_people(envelope: Envelope, store: TrustStore, now: datetime) -> tuple[TrustedKey, TrustedKey]:
    """The two-person rule.

    Exactly two valid signatures by two distinct trusted keys of two different people, one prescriber and one
    verifier, neither expired. Returns (prescriber, verifier).
    """
    sigs = envelope.signatures
    if len(sigs) < 2:
        raise SignedError(f"{len(sigs)} signature(s): a plan needs a prescriber's and a verifier's")
    if len(sigs) > 2:
        raise SignedError(f"{len(sigs)} signatures: a plan carries exactly two, a prescriber's and a verifier's")
    first, second = sigs
    if first.key == second.key:
        raise SignedError(f"both signatures are by key {first.key}: two different people must sign")
    if first.role == second.role:
        raise SignedError(f"both signatures are by a {first.role}: one prescriber and one verifier must sign")
    keys = [_usable_key(store, s, now) for s in sigs]
    if same_person(keys[0].holder, keys[1].holder):
        raise SignedError(f"both keys belong to {keys[0].holder}: two different people must sign")
    for signature, key in zip(sigs, keys, strict=True):
        check_signature(envelope, signature, decode_key(key.public_key))
    by_role = {k.role: k for k in keys}
    return by_role["prescriber"], by_role["verifier"]


def signers(keys: Iterable[TrustedKey]) -> str:
    """The signers' holders, roles and key ids in one line, for logs and the plan tool."""
    return ", ".join(f"{k.holder} ({k.role}, key {k.id})" for k in keys)


class ConfigMessage(_Strict):
    """The `down/config` payload.

    A signed plan, a newer trust store, or both (a trust store first, so a plan signed with a newly added key
    can travel with the store that trusts it).
    """

    v: Literal[1] = Field(default=1, description="the config message format; JSON true is not 1")
    plan: Envelope | None = None
    trust_store: Envelope | None = None

    @field_validator("v", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        if isinstance(value, bool):  # True == 1 in Python: a Literal[1] alone lets it through
            raise ValueError("must be the number 1")
        return value

    @model_validator(mode="after")
    def _something(self) -> ConfigMessage:
        if self.plan is None and self.trust_store is None:
            raise ValueError("carries neither a plan nor a trust store")
        return self

    @classmethod
    def parse(cls, raw: bytes) -> ConfigMessage:
        """A config message from untrusted bytes (bounded by `parse_json`); `SignedError` says what is wrong."""
        return validate(cls, parse_json(raw), "not a config message")
