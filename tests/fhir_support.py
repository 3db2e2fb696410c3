"""Real OAuth 2.0 access tokens and DPoP proofs for the FHIR API's tests: keys made in the test, tokens
signed with them, the API's own validator checking them (nothing mocked)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm

from central.fhir.api import ApiSettings, create_app
from central.fhir.auth import AuthSettings, TokenValidator, b64url, jwk_thumbprint
from central.ingest.worker import Incoming, changes_and_acks
from central.store import Database, RegisteredGateway
from protocol import Topics, WireReading
from tests.central_support import batch

BASE = "https://fhir.example.no/fhir"
ISSUER = "https://helseid.example.no"


def public_jwk(key: ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**found, **extra}


@dataclass
class Issuer:
    """An authorisation server of the test: its key, its JWKS, and tokens signed with it."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str = "test-key-1"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key, kid=self.kid, use="sig", alg="ES256")]}

    def token(self, tenant: str | None = "t1", *, scope: str = "system/Observation.rs system/Device.r",
              audience: str = BASE, issuer: str = ISSUER, lifetime_s: int = 300, jkt: str | None = None,
              claim: str = "tenant", **extra: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": issuer, "sub": "hospital-client", "aud": audience, "iat": now,
                                  "exp": now + lifetime_s, "jti": str(uuid.uuid4()), "scope": scope, **extra}
        if tenant is not None:
            claims[claim] = tenant
        if jkt:
            claims["cnf"] = {"jkt": jkt}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})


@dataclass
class DPoPKey:
    """The client's DPoP key pair and proofs made with it (RFC 9449)."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(public_jwk(self.key))

    def proof(self, method: str, url: str, token: str, *, jti: str | None = None, iat: int | None = None) -> str:
        claims = {"htm": method, "htu": url, "iat": iat if iat is not None else int(time.time()),
                  "jti": jti or str(uuid.uuid4()), "ath": b64url(hashlib.sha256(token.encode()).digest())}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public_jwk(self.key)})


def settings(issuer: Issuer, **overrides: Any) -> AuthSettings:
    return AuthSettings(**{"issuer": ISSUER, "audience": BASE, "jwks": issuer.jwks(), **overrides})


def client(database: Database, auth: AuthSettings, *, token: str | None = None,
           raise_server_exceptions: bool = False) -> TestClient:
    app = create_app(database, ApiSettings(base_url=BASE, validator=TokenValidator(auth)))
    api = TestClient(app, raise_server_exceptions=raise_server_exceptions)
    if token:
        api.headers["Authorization"] = f"Bearer {token}"
    return api


def ingest(database: Database, gateway: RegisteredGateway, readings: list[WireReading]) -> None:
    """Through the worker's own planning step and commit, as a gateway's batch would arrive."""
    message = Incoming(Topics(gateway.tenant, gateway.id).readings, batch(gateway.id, readings), 1, 1)
    changes, _ = changes_and_acks([message], {gateway.id: gateway}, now=datetime.now(UTC))
    database.commit(changes)


def effective(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["resource"]["effectiveDateTime"].replace("Z", "+00:00"))
