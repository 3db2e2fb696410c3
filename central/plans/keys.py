"""Key pairs for the people who sign plans and for the tenant's offline root key.

`ID.key` is the private key (PKCS#8 PEM, mode 0600, never leaves the signer's machine); `ID.pub.json`
the public half with its id, role, holder and validity: for a prescriber or verifier exactly the
entry a trust store lists.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from central.errors import CentralError
from protocol import SignedError, decode_key, describe, encode_key

KeyRole = Literal["prescriber", "verifier", "root"]


class PublicKeyFile(BaseModel):
    """A signing key's public half as `plan keygen` writes it (`<id>.pub.json`): id, role, holder and
    validity; what a trust store is built from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    role: KeyRole
    holder: str = Field(min_length=1, max_length=200)
    public_key: str
    not_before: AwareDatetime
    not_after: AwareDatetime

    @property
    def key(self) -> Ed25519PublicKey:
        return decode_key(self.public_key)


def generate(key_id: str, role: KeyRole, holder: str, out: Path, *, now: datetime, days: int) -> tuple[Path, Path]:
    """A new Ed25519 key pair in `out`: the private key (0600, never overwritten) and its public file.
    Returns their paths; CentralError for a bad id or holder, or a key that exists already."""
    private = Ed25519PrivateKey.generate()
    try:
        info = PublicKeyFile(id=key_id, role=role, holder=holder, public_key=encode_key(private.public_key()),
                             not_before=now, not_after=now + timedelta(days=days))
    except ValidationError as exc:
        raise CentralError(f"keygen: {describe(exc)}") from None
    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / f"{key_id}.key", out / f"{key_id}.pub.json"
    if key_path.exists() or pub_path.exists():
        raise CentralError(f"{key_path} or {pub_path} exists already: a key is never overwritten")
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_text(info.model_dump_json(indent=2) + "\n")
    return key_path, pub_path


def load_private(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in this PEM file; CentralError with one line if it is not one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise CentralError(f"{path}: cannot read the private key: {exc.strerror}") from None
    except ValueError:
        raise CentralError(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CentralError(f"{path}: not an Ed25519 key")
    return key


def load_public(path: Path) -> PublicKeyFile:
    """The public key file at `path`, checked; CentralError with one line if it is not one."""
    try:
        info = PublicKeyFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
        decode_key(info.public_key)
        return info
    except OSError as exc:
        raise CentralError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CentralError(f"{path}: not JSON: {exc.msg}") from None
    except ValidationError as exc:
        raise CentralError(f"{path}: {describe(exc)}") from None
    except SignedError as exc:
        raise CentralError(f"{path}: {exc}") from None
