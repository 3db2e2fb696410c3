"""Who is asking: OAuth 2.0 access tokens (SMART Backend Services style) validated by the API itself.

A token is a JWT signed by the configured issuer (its keys from the issuer's JWKS, fetched and cached
by PyJWT's `PyJWKClient`, or a fixed JWKS such as the local demo issuer's), for this API (`aud`), not
expired, with SMART scopes (`system/Observation.read`, `system/*.rs`, ...) and the caller's tenant in a
claim (`tenant`, or a HelseID-style `orgnr` mapped to a tenant by configuration). A token bound to a
key (`cnf.jkt`, RFC 9449 DPoP) is accepted only as `Authorization: DPoP <token>` with a `DPoP` proof
signed by that key for this request (`htm`, `htu`, a fresh `iat`, an unused `jti`, `ath`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")


@dataclass(frozen=True)
class AuthSettings:
    """How tokens are checked. Exactly one of `jwks_url` (production: the issuer's key set, cached) and
    `jwks` (a fixed key set: the local demo issuer, tests)."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = None
    tenant_claim: str = "tenant"
    tenant_map: Mapping[str, str] = field(default_factory=dict)  # claim value -> tenant; empty: value is tenant
    require_dpop: bool = False
    leeway_s: int = 30
    dpop_max_age_s: int = 300
    algorithms: tuple[str, ...] = SIGNING_ALGORITHMS


@dataclass(frozen=True)
class Caller:
    tenant: str
    scopes: frozenset[str]
    client: str

    def may(self, resource_type: str, action: str) -> bool:
        """SMART scopes: v1 `system/<type|*>.read` or `.*`, v2 `system/<type|*>.<cruds letters>`
        (`action` is `r` for read, `s` for search)."""
        for scope in self.scopes:
            context, _, rest = scope.partition("/")
            kind, _, what = rest.partition(".")
            if context != "system" or kind not in (resource_type, "*"):
                continue
            if what in ("read", "*") or (what and set(what) <= set("cruds") and action in what):
                return True
        return False


class AuthError(Exception):
    """401 (no or bad credentials), 403 (a valid token that may not do this) or 503 (the issuer's keys
    cannot be fetched: try again)."""

    def __init__(self, status: int, text: str, *, dpop: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.dpop = dpop

    @property
    def challenge(self) -> str:
        error = "invalid_token" if self.status == 401 else "insufficient_scope"
        scheme = "DPoP algs=\"ES256 RS256 EdDSA\"" if self.dpop else "Bearer"
        return f'{scheme} error="{error}"'


def b64url(data: bytes) -> str:
    """Base64url without padding (JOSE)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members of the public key, sorted, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    members = required.get(str(jwk.get("kty")))
    if members is None or any(m not in jwk for m in members):
        raise AuthError(401, "DPoP proof: its jwk is not a public EC, RSA or OKP key")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


class _Replay:
    """The `jti`s of DPoP proofs seen within their acceptance window (one process's memory)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, jti: str, until: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000 or any(t < now for t in list(self._seen.values())[:64]):
                self._seen = {k: t for k, t in self._seen.items() if t >= now}
            if jti in self._seen:
                return False
            self._seen[jti] = until
            return True


class TokenValidator:
    """Checks an Authorization header (and DPoP proof) and says who the caller is. Blocking (a JWKS fetch
    may happen): call it off the event loop."""

    def __init__(self, settings: AuthSettings) -> None:
        if (settings.jwks_url is None) == (settings.jwks is None):
            raise ValueError("AuthSettings: give exactly one of jwks_url and jwks")
        self.settings = settings
        self._client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300) \
            if settings.jwks_url else None
        self._keys = jwt.PyJWKSet.from_dict(dict(settings.jwks)) if settings.jwks is not None else None
        self._replay = _Replay()

    def _signing_key(self, token: str) -> Any:
        try:
            if self._client is not None:
                return self._client.get_signing_key_from_jwt(token).key
            assert self._keys is not None
            kid = jwt.get_unverified_header(token).get("kid")
            matching = [k for k in self._keys.keys if kid is None or k.key_id == kid]
            if not matching:
                raise AuthError(401, "the access token is signed by a key the issuer does not publish")
            return matching[0].key
        except jwt.PyJWKClientConnectionError as exc:
            # Our side cannot reach the issuer: not the client's token at fault (a 401 would make it drop it).
            raise AuthError(503, f"the token issuer's keys cannot be fetched now: {exc}") from None
        except jwt.PyJWKClientError as exc:
            raise AuthError(401, f"the issuer's keys: {exc}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"the access token: {exc}") from None

    def authenticate(self, method: str, url: str, authorization: str | None, proof: str | None) -> Caller:
        """`url`: the request's public URL (configured base, never the Host header) without its query."""
        if not authorization:
            raise AuthError(401, "an access token is needed (Authorization: Bearer or DPoP)",
                            dpop=self.settings.require_dpop)
        scheme, _, token = authorization.partition(" ")
        scheme = scheme.lower()
        token = token.strip()
        if scheme not in ("bearer", "dpop") or not token:
            raise AuthError(401, "the Authorization header is neither Bearer nor DPoP")
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._signing_key(token), algorithms=list(s.algorithms), audience=s.audience,
                issuer=s.issuer, leeway=s.leeway_s, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"the access token: {exc}", dpop=scheme == "dpop") from None
        jkt = (claims.get("cnf") or {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
        if jkt is not None or scheme == "dpop" or s.require_dpop:
            if scheme != "dpop" or jkt is None:
                text = "this server accepts DPoP-bound tokens only" if s.require_dpop and jkt is None else \
                    "a DPoP-bound token goes with `Authorization: DPoP` and a proof, a Bearer token with neither"
                raise AuthError(401, text, dpop=True)
            self._check_proof(proof, method, url, token, jkt)
        return Caller(self._tenant(claims), self._scopes(claims), str(claims.get("client_id") or claims.get("sub")))

    def _tenant(self, claims: Mapping[str, Any]) -> str:
        value = claims.get(self.settings.tenant_claim)
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            raise AuthError(403, f"the access token names no tenant (claim {self.settings.tenant_claim!r})")
        if not self.settings.tenant_map:
            return str(value)
        tenant = self.settings.tenant_map.get(str(value))
        if tenant is None:
            raise AuthError(403, f"{self.settings.tenant_claim} {value} is not mapped to a tenant here")
        return tenant

    @staticmethod
    def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
        scope = claims.get("scope", "")
        if isinstance(scope, list):
            return frozenset(str(x) for x in scope)
        return frozenset(str(scope).split())

    def _check_proof(self, proof: str | None, method: str, url: str, token: str, jkt: str) -> None:
        if not proof:
            raise AuthError(401, "a DPoP proof (header DPoP) is needed with a DPoP-bound token", dpop=True)
        try:
            header = jwt.get_unverified_header(proof)
            jwk = header.get("jwk")
            if header.get("typ") != "dpop+jwt" or header.get("alg") not in SIGNING_ALGORITHMS \
                    or not isinstance(jwk, dict) or "d" in jwk:
                raise AuthError(401, "DPoP proof: typ dpop+jwt, an asymmetric alg and a public jwk are needed",
                                dpop=True)
            key = jwt.PyJWK.from_dict(jwk, algorithm=header["alg"]).key
            claims = jwt.decode(proof, key, algorithms=[header["alg"]],
                                options={"require": ["iat", "jti", "htm", "htu"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"DPoP proof: {exc}", dpop=True) from None
        expected = {
            "the key (cnf.jkt)": (jwk_thumbprint(jwk), jkt),
            "htm": (claims.get("htm"), method.upper()),
            "htu": (_without_query(str(claims.get("htu"))), url),
            "ath": (claims.get("ath"), b64url(hashlib.sha256(token.encode()).digest())),
        }
        for what, (got, want) in expected.items():
            if got != want:
                raise AuthError(401, f"DPoP proof: {what} does not match this request and token", dpop=True)
        iat = claims["iat"]
        if not isinstance(iat, int | float) or abs(time.time() - iat) > self.settings.dpop_max_age_s:
            raise AuthError(401, "DPoP proof: iat is not recent", dpop=True)
        if not self._replay.first_use(str(claims["jti"]), float(iat) + 2 * self.settings.dpop_max_age_s):
            raise AuthError(401, "DPoP proof: this jti was used before (a replay)", dpop=True)


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]
