"""The outbox file's sealing format, in one place: associated data, padding, sealing, key wrapping, keyed tags.

Every sealed value in the file is `nonce (12 bytes) || AES-256-GCM ciphertext and tag`. A record's
plaintext is marked and compressed when that makes it shorter (its first byte says which; JSON written
before never starts with either) and
padded to a multiple of its bucket before it is sealed: `RECORD_BUCKET` for readings and events, so
every usual one is exactly one bucket long whatever its zone or kind (issue 19.10: a red was 1564
bytes, a yellow 1308, a green 1052), `PAD_TO` for the rest; its associated data names
what it is (table, format version, id, key version and, for history, its clear columns), so a sealed
value cannot be moved to another row or replayed under another id. Data keys and the tag key are
stored wrapped by the key-encryption key (KEK) the same way, without padding.

`outbox.py` (writing and reading rows), `migrate.py` (version 1 files) and `salvage.py` (damaged
files) all seal and open through this module: a change to the format is a change here, and a file
written before it must still open (docs/decisions/0001, 0003). Nothing here touches SQLite.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
PAD_TO = 256
# Readings and events: compressed, the JSON of any usual one fits one bucket (the largest measured, a red
# blood pressure with every rule and advice key, compresses to about 600 bytes).
RECORD_BUCKET = 1024
# The first byte of every packed plaintext says how it was packed. Values written before packing (no
# marker) are JSON, which never starts with either byte, so they still open as they are.
_COMPRESSED = b"\x01"
_RAW = b"\x02"
TAG_KEY_AAD = b"dho-outbox/v2|tag-key"


# Associated data of each kind of sealed value (schema version 2).

def outbox_aad(record_id: str, key_version: int) -> bytes:
    """Associated data of a reading waiting in the outbox."""
    return f"dho-outbox/v2|{record_id}|{key_version}".encode()


def event_aad(event_id: str, key_version: int) -> bytes:
    """Associated data of a durable event (up/events)."""
    return f"dho-event/v1|{event_id}|{key_version}".encode()


def history_aad(record_id: str, kind: int, effective: float, seq: int, key_version: int) -> bytes:
    """Associated data of a history entry, binding its clear columns (kind tag, effective time, seq)."""
    # The clear columns are bound too: an entry cannot be moved to another kind's or time's window.
    return f"dho-history/v2|{record_id}|{kind}|{effective!r}|{seq}|{key_version}".encode()


def document_aad(kind: str, version: int, key_version: int) -> bytes:
    """Associated data of a kept signed document (a plan, a trust store)."""
    return f"dho-document/v1|{kind}|{version}|{key_version}".encode()


def unassigned_aad(record_id: str, key_version: int) -> bytes:
    """Associated data of a weighing waiting for the patient's "was this you?"."""
    return f"dho-unassigned/v1|{record_id}|{key_version}".encode()


def key_aad(version: int) -> bytes:
    """Associated data of data key `version` wrapped by the KEK (unchanged since schema version 1)."""
    return f"dho-outbox/v1|data-key|{version}".encode()


# Schema version 1 (before issue 10.1/10.6): only read, by the migration.

def outbox_v1_aad(record_id: str, key_version: int) -> bytes:
    """Associated data of a version 1 outbox record (unpadded)."""
    return f"dho-outbox/v1|{record_id}|{key_version}".encode()


def history_v1_aad(record_id: str, key_version: int) -> bytes:
    """Associated data of a version 1 history entry (unpadded)."""
    return f"dho-history/v1|{record_id}|{key_version}".encode()


# Padding.

def pad(plaintext: bytes, bucket: int = PAD_TO) -> bytes:
    """To the next multiple of `bucket` (ISO/IEC 7816-4: 0x80, then zeros): a ciphertext's length must not
    tell a red reading from a green one (the zone and advice keys change the JSON's length)."""
    padded = plaintext + b"\x80"
    return padded + b"\x00" * (-len(padded) % bucket)


def pack(plaintext: bytes, bucket: int = PAD_TO) -> bytes:
    """Marked, compressed when that is shorter, and padded to `bucket`: what `seal` encrypts."""
    compressed = _COMPRESSED + zlib.compress(plaintext, 9)
    raw = _RAW + plaintext
    return pad(compressed if len(compressed) < len(raw) else raw, bucket)


def unpack(packed: bytes) -> bytes:
    """The plaintext `pack` was given; a value padded before packing existed (JSON, no marker) as it is."""
    body = unpad(packed)
    marker = body[:1]
    if marker == _COMPRESSED:
        return zlib.decompress(body[1:])
    return body[1:] if marker == _RAW else body


def unpad(padded: bytes) -> bytes:
    """The plaintext `pad` was given; InvalidTag if `padded` does not end as `pad` ends its output."""
    end = padded.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise InvalidTag  # authentic but not padded by this code: treat as not readable
    return end[:-1]


# Sealing and opening.

def _encrypt(key: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)  # random per value: AES-GCM must never reuse a nonce under one key
    return nonce + key.encrypt(nonce, plaintext, aad)


def _decrypt(key: AESGCM, blob: bytes, aad: bytes) -> bytes:
    return key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


def seal(key: AESGCM, plaintext: bytes, aad: bytes, bucket: int = PAD_TO) -> bytes:
    """A record as stored: `plaintext` packed (compressed, padded to `bucket`), then sealed under the data
    key with this associated data."""
    return _encrypt(key, pack(plaintext, bucket), aad)


def unseal(key: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a value made by `seal`. Raises InvalidTag when it is not authentic under this key
    and associated data (altered, another row's, another key's) or not padded; ValueError when it is
    too short to hold a nonce."""
    try:
        return unpack(_decrypt(key, blob, aad))
    except zlib.error:
        raise InvalidTag from None  # authentic but not packed by this code: treat as not readable


def unseal_v1(key: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a schema version 1 record (sealed without padding). Raises as `unseal`."""
    return _decrypt(key, blob, aad)


# Key wrapping by the KEK.

def wrap(kek: AESGCM, secret: bytes, aad: bytes) -> bytes:
    """`secret` (a key) sealed by the KEK, unpadded, as stored in `data_keys` and `tag_key`."""
    return _encrypt(kek, secret, aad)


def unwrap(kek: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """The key `wrap` sealed; InvalidTag when this KEK (or this associated data) does not open it."""
    return _decrypt(kek, blob, aad)


def wrap_data_key(kek: AESGCM, data_key: bytes, version: int) -> bytes:
    """Data key `version` as stored in `data_keys.wrapped`."""
    return wrap(kek, data_key, key_aad(version))


def unwrap_data_key(kek: AESGCM, blob: bytes, version: int) -> AESGCM:
    """Data key `version`, ready to seal and open; InvalidTag when the KEK does not open it."""
    return AESGCM(unwrap(kek, blob, key_aad(version)))


def wrap_tag_key(kek: AESGCM, tag_key: bytes) -> bytes:
    """The tag key as stored in `tag_key.wrapped`."""
    return wrap(kek, tag_key, TAG_KEY_AAD)


def unwrap_tag_key(kek: AESGCM, blob: bytes) -> bytes:
    """The tag key; InvalidTag when the KEK does not open it."""
    return unwrap(kek, blob, TAG_KEY_AAD)


# Keyed tags: what the store must find without opening a record (docs/decisions/0003).

def keyed_tag(key: bytes, label: bytes) -> int:
    """HMAC-SHA256 under the tag key, 64 bits (a signed SQLite integer): findable, not invertible."""
    return int.from_bytes(hmac.new(key, label, hashlib.sha256).digest()[:8], "big", signed=True)


def kind_tag(tag_key: bytes, kind: str) -> int:
    """The keyed tag of a measurement kind (`history.kind`)."""
    return keyed_tag(tag_key, b"kind|" + kind.encode())


def dedup_tag(tag_key: bytes, material: bytes | str) -> int:
    """The keyed tag of what identifies one physical measurement (`history.dedup`)."""
    return keyed_tag(tag_key, b"dedup|" + (material.encode() if isinstance(material, str) else material))
