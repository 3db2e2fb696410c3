"""Kit wipe by crypto-erase: destroy the key material first, then the files.

Flash storage (SD cards) remaps blocks, so overwriting a file does not promise the old bytes are gone;
what makes the readings unreadable is that no key able to open them survives: the data keys are
deleted from the outbox with SQLite's secure_delete, and the key-encryption key (its file, or the
encrypted systemd credential) is overwritten and removed. Without a TPM or secure element, the KEK
(or the host key that encrypts the credential) lives on the same card: a forensic image of the card
could still hold remnants of it. That limit is written in docs/decisions/0002-crypto-erase.md.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.storage.keys import KeySource


def _sidecars(outbox: Path) -> list[Path]:
    return [outbox, outbox.with_name(outbox.name + "-wal"), outbox.with_name(outbox.name + "-shm")]


def destroy_keys(outbox: Path, kek: KeySource) -> list[Path]:
    """Step 1: delete every wrapped data key and the tag key (overwritten in place), then destroy the KEK."""
    if outbox.exists():
        db = sqlite3.connect(outbox, isolation_level=None)
        try:
            db.execute("PRAGMA secure_delete=ON")
            db.execute("DELETE FROM data_keys")
            # The tag key too: without it the keyed tags (dedup, kinds) cannot be tested against guesses.
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tag_key'").fetchone():
                db.execute("DELETE FROM tag_key")
            # Move the WAL's copies of the key pages into the main file (overwritten there) and empty it.
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
    return kek.destroy()


def remove_files(outbox: Path) -> list[Path]:
    """Step 2: remove the outbox and its WAL and shared-memory files."""
    removed = []
    for path in _sidecars(outbox):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def crypto_erase(outbox: Path, kek: KeySource) -> list[Path]:
    """Kit wipe: destroy the keys (step 1), then remove the files (step 2); returns what was destroyed."""
    return [*destroy_keys(outbox, kek), *remove_files(outbox)]
