"""The keys of one outbox file: the data keys (table `data_keys`) and the tag key (table `tag_key`).

Both are stored only wrapped by the key-encryption key (KEK); the wipe deletes these two tables before
it destroys the KEK (docs/decisions/0002). Records are sealed under the newest data key; older ones
stay until no record needs them (`retire_unused`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.storage.connection import Connection, OutboxDamaged, StoreError, damaged
from gateway.storage.sealing import (
    PAD_TO,
    dedup_tag,
    kind_tag,
    seal,
    unseal,
    unwrap_data_key,
    unwrap_tag_key,
    wrap_data_key,
    wrap_tag_key,
)


class Keyring:
    """Seals and opens records with the outbox's data keys, and computes its keyed tags. `load` must run
    before anything else."""

    def __init__(self, conn: Connection, kek: bytes) -> None:
        self._conn = conn
        self._kek = AESGCM(kek)
        self._keys: dict[int, AESGCM] = {}
        self._tags: dict[str, int] = {}
        self._tag_key = b""

    def load(self) -> None:
        """Unwrap every data key and the tag key; make the first of each in a new file. Raises
        StoreError (nothing deleted) when the KEK does not open them: it is another file's key."""
        rows = self._conn.db.execute("SELECT version, wrapped FROM data_keys").fetchall()
        failed = 0
        for version, wrapped in rows:
            if not isinstance(version, int) or not isinstance(wrapped, bytes):
                # A damaged page reads a wrapped key back as NULL or text: no record under it opens.
                raise OutboxDamaged(damaged(self._conn.path, f"data key {version!r} is unreadable"))
            try:
                self._keys[version] = unwrap_data_key(self._kek, wrapped, version)
            except InvalidTag:
                failed += 1
        if failed and self._keys:  # the KEK opens the others: this one was altered on the card
            raise OutboxDamaged(damaged(self._conn.path, f"{failed} wrapped data key(s) fail authentication"))
        if failed:
            raise StoreError(
                f"the key file does not match outbox {self._conn.path}: its readings were sealed under another "
                "key. Restore the right key file; nothing was deleted."
            )
        had_keys = bool(self._keys)
        if not self._keys:
            self.rotate()
        self._load_tag_key(had_keys)

    def _load_tag_key(self, had_keys: bool) -> None:
        row = self._conn.db.execute("SELECT wrapped FROM tag_key").fetchone()
        if row is not None and not isinstance(row[0], bytes):
            raise OutboxDamaged(damaged(self._conn.path, "the tag key is unreadable"))
        if row is None:
            self.adopt_tag_key(os.urandom(32))
            return
        try:
            self._tag_key = unwrap_tag_key(self._kek, row[0])
        except InvalidTag:
            if had_keys:  # the KEK opened the data keys: the tag key was altered on the card
                raise OutboxDamaged(damaged(self._conn.path, "the wrapped tag key fails authentication")) from None
            raise StoreError(f"the tag key in outbox {self._conn.path} does not open with this key file; "
                             "nothing was deleted") from None

    def adopt_tag_key(self, tag_key: bytes) -> None:
        """Use this tag key (a new outbox, or one salvaged from a damaged file keeps its tags)."""
        wrapped = wrap_tag_key(self._kek, tag_key)
        with self._conn.lock:
            self._conn.db.execute("INSERT OR REPLACE INTO tag_key VALUES (1, ?)", (wrapped,))
            self._tag_key = tag_key
            self._tags.clear()

    @property
    def tag_key(self) -> bytes:
        """The tag key in clear (salvage carries it to the new file)."""
        return self._tag_key

    def kind_tag(self, kind: str) -> int:
        """The keyed tag of a measurement kind (cached: it is asked for on every reading)."""
        tag = self._tags.get(kind)
        if tag is None:
            tag = self._tags[kind] = kind_tag(self._tag_key, kind)
        return tag

    def dedup_tag(self, material: bytes | str) -> int:
        """The keyed tag of what identifies one physical measurement."""
        return dedup_tag(self._tag_key, material)

    @property
    def version(self) -> int:
        """The version of the data key new records are sealed under."""
        return max(self._keys)

    def rotate(self) -> int:
        """Start a new data key; returns its version. Older records stay readable with their own key."""
        data_key = AESGCM.generate_key(bit_length=256)
        with self._conn.lock:
            version = max(self._keys, default=0) + 1
            wrapped = wrap_data_key(self._kek, data_key, version)
            self._conn.db.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (version, wrapped, time.time()))
            self._keys[version] = AESGCM(data_key)
        return version

    def retire_unused(self) -> list[int]:
        """Forget data keys (other than the current one) that no stored or quarantined record needs."""
        with self._conn.lock:
            current = max(self._keys)
            # Every table with sealed values: a key is retired only when none of them names it.
            in_use = {int(v) for (v,) in self._conn.db.execute(
                "SELECT key_version FROM outbox UNION SELECT key_version FROM quarantine "
                "UNION SELECT key_version FROM events UNION SELECT key_version FROM documents "
                "UNION SELECT key_version FROM unassigned "
                "UNION SELECT key_version FROM history WHERE key_version IS NOT NULL")}
            retired = [v for v in self._keys if v != current and v not in in_use]
            for version in retired:
                self._conn.db.execute("DELETE FROM data_keys WHERE version = ?", (version,))
                del self._keys[version]
        return retired

    def seal(self, plaintext: bytes, aad: Callable[[int], bytes], bucket: int = PAD_TO) -> tuple[int, bytes]:
        """(key version, sealed value) under the newest data key; `aad` makes the associated data for
        that key version; `bucket` is what the packed plaintext is padded to (sealing.py)."""
        version = max(self._keys)
        return version, seal(self._keys[version], plaintext, aad(version), bucket)

    def unseal(self, key_version: int, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of a stored value; InvalidTag when it is not authentic or its key is gone."""
        key = self._keys.get(key_version)
        if key is None:
            raise InvalidTag  # a record whose key was retired or never existed cannot be authentic
        return unseal(key, sealed, aad)
