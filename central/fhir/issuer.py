"""The embedded default's own token issuer (demo and development): a local ES256 key, its JWKS, and
SMART-style access tokens for one tenant. Production trusts the health service's issuer instead
(HelseID, an integration engine's authorisation server) through its JWKS."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

LOCAL_ISSUER = "urn:dho:central:local-issuer"
DEFAULT_SCOPE = "system/Observation.rs system/Device.r"


class LocalIssuer:
    """`DIR/issuer.key` (EC P-256, 0600, made on first use) and `DIR/jwks.json` (its public half)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key_file = directory / "issuer.key"
        if not self.key_file.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            # Written aside, then linked into place: a second process making the key at the same moment
            # (serve and token started together) finds either no key or a whole one, and keeps the first.
            part = directory / f".issuer.key.{uuid.uuid4().hex}"
            descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(part, self.key_file)
            except FileExistsError:
                pass
            finally:
                part.unlink()
        loaded = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key_file}: not an EC private key")
        self._key = loaded
        self.kid = self.jwk()["kid"]

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, its kid the RFC 7638 thumbprint."""
        from central.fhir.auth import jwk_thumbprint

        public: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        public.update(use="sig", alg="ES256", kid=jwk_thumbprint(public))
        return public

    def jwks(self) -> dict[str, Any]:
        """The key set a server trusting this issuer checks tokens with."""
        return {"keys": [self.jwk()]}

    def issue(self, *, tenant: str, audience: str, scope: str = DEFAULT_SCOPE, lifetime_s: int = 3600,
              client: str = "local-client", jkt: str | None = None) -> str:
        """An access token for `tenant`; with `jkt`, bound to that DPoP key (RFC 9449 `cnf.jkt`)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": LOCAL_ISSUER, "sub": client, "client_id": client, "aud": audience,
                                  "iat": now, "exp": now + lifetime_s, "jti": str(uuid.uuid4()),
                                  "scope": scope, "tenant": tenant}
        if jkt:
            claims["cnf"] = {"jkt": jkt}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid, "typ": "at+jwt"})
