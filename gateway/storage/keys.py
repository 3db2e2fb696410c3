"""Where the outbox's key-encryption key (KEK) comes from.

Two sources ship: a 0600 file created on first run (development, kits without systemd), and a
systemd credential (production: `LoadCredentialEncrypted=` in the unit, so the secret on the card is
encrypted by the host key or bound to the TPM by `systemd-creds --with-key=tpm2`). A secure element
or a TPM driven directly plugs in as another `KeySource`: `load`, `present`, `destroy`.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.errors import GatewayError
from gateway.settings import GatewaySection

KEY_BYTES = 32


class KeyFileError(GatewayError):
    """The key is unusable or missing; the message says what to do. Nothing stored is touched."""


class KeySource(Protocol):
    """Where the outbox's key-encryption key (KEK) lives: a 0600 file or an encrypted systemd credential."""

    def describe(self) -> str:
        """Where the key lives, for messages (never the key itself)."""
        ...

    def present(self) -> bool:
        """Whether the key is where it should be (nothing is created)."""
        ...

    def load(self, *, create: bool) -> bytes:
        """The 32-byte KEK; KeyFileError when it cannot be had. `create`: a first run may make one."""
        ...

    def destroy(self) -> list[Path]:
        """Make the KEK unrecoverable (kit wipe); returns what was destroyed."""
        ...


def _check_length(key: bytes, where: str) -> bytes:
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{where} holds {len(key)} bytes, expected {KEY_BYTES}: it is not a dho-gateway key")
    return key


def overwrite_and_remove(path: Path) -> list[Path]:
    """Overwrite a file with random bytes, flush it to the card, then remove it; returns what it removed."""
    if not path.exists():
        return []
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
    return [path]


@dataclass(frozen=True)
class KeyFile:
    """The KEK in a 0600 file, created on first run (development, kits without systemd)."""

    path: Path

    def describe(self) -> str:
        """The key file's path, for messages."""
        return f"key file {self.path}"

    def present(self) -> bool:
        """Whether the key file exists."""
        return self.path.exists()

    def load(self, *, create: bool) -> bytes:
        """The key; with `create`, a missing file is made. KeyFileError when it is missing (and not
        `create`), readable by others, or not 32 bytes."""
        if not create and not self.path.exists():
            raise KeyFileError(
                f"key file {self.path} is missing: restore it (a new key could not read the readings already "
                "sealed); nothing was deleted"
            )
        return load_or_create_key(self.path)

    def destroy(self) -> list[Path]:
        """Overwrite and remove the key file; returns it (or nothing if it was gone)."""
        return overwrite_and_remove(self.path)


@dataclass(frozen=True)
class SystemdCredential:
    """A credential systemd decrypts into $CREDENTIALS_DIRECTORY for this service only.

    `store` is the encrypted file the unit loads it from; destroying it is what a wipe needs.
    """

    name: str
    store: Path
    directory: Path | None

    @classmethod
    def from_environment(cls, name: str, store: Path) -> SystemdCredential:
        """The credential `name` in the directory systemd names in $CREDENTIALS_DIRECTORY (none if unset)."""
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        return cls(name, store, Path(directory) if directory else None)

    def describe(self) -> str:
        """The credential's name and encrypted file, for messages."""
        return f"systemd credential {self.name!r} (from {self.store})"

    def present(self) -> bool:
        """Whether systemd has decrypted the credential for this service."""
        return self.directory is not None and (self.directory / self.name).exists()

    def load(self, *, create: bool) -> bytes:
        """The decrypted key; KeyFileError (saying what to check) when systemd did not provide it or it
        is not 32 bytes. `create` is ignored: provisioning makes the credential."""
        # Never created here: provisioning makes the credential with systemd-creds (see the unit file).
        if self.directory is None:
            raise KeyFileError(
                f"key_source is systemd-credential but $CREDENTIALS_DIRECTORY is not set: start the gateway "
                f"from its systemd unit (LoadCredentialEncrypted={self.name}:{self.store})"
            )
        path = self.directory / self.name
        if not path.exists():
            raise KeyFileError(
                f"systemd credential {self.name!r} is not in {self.directory}: check that {self.store} exists and "
                f"the unit has LoadCredentialEncrypted={self.name}:{self.store}; nothing was deleted"
            )
        return _check_length(path.read_bytes(), f"systemd credential {self.name!r}")

    def destroy(self) -> list[Path]:
        """Overwrite and remove the encrypted credential file; returns it."""
        # The decrypted copy lives in a per-service ramfs that systemd removes; the card holds `store`.
        return overwrite_and_remove(self.store)


def key_source_for(g: GatewaySection) -> KeySource:
    """The key source the configuration names: the systemd credential or the key file."""
    if g.key_source == "systemd-credential":
        return SystemdCredential.from_environment(g.key_credential, g.key_credential_store)
    return KeyFile(g.key_path)


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte key in `path`, made (0600, fsynced) if the file is missing. KeyFileError when the file
    is readable by others or does not hold 32 bytes."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        # O_EXCL: two processes starting at once must not each write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is readable by others (mode {mode:04o}); run: chmod 600 {path}"
        )
    return _check_length(path.read_bytes(), f"key file {path}")
