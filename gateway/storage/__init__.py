"""The sealed, durable outbox, the keys that seal it, crypto-erase, and salvage of a damaged file.

`Outbox` is what the uplink needs of a durable outbox (`SealedOutbox` provides it), with its `OutboxEntry`
and the `OutboxUnavailable` every method may raise. `MemoryOutbox` is the same interface in memory, for
tests and benches: it holds to the same contract as `SealedOutbox` (tests/test_outbox_contract.py), but
seals nothing and keeps nothing across a restart."""

from __future__ import annotations

from gateway.storage.interface import Outbox, OutboxEntry, OutboxUnavailable
from gateway.storage.keys import (
    KeyFile,
    KeyFileError,
    KeySource,
    SystemdCredential,
    key_source_for,
    load_or_create_key,
    overwrite_and_remove,
)
from gateway.storage.lock import LOCK_NAME, DataDirBusy, data_dir_lock
from gateway.storage.memory import MemoryOutbox
from gateway.storage.outbox import OutboxDamaged, PutResult, Remember, SealedOutbox, StoreError
from gateway.storage.salvage import Salvaged, salvage
from gateway.storage.wipe import crypto_erase, destroy_keys, remove_files

__all__ = [
    "LOCK_NAME",
    "DataDirBusy",
    "KeyFile",
    "KeyFileError",
    "KeySource",
    "MemoryOutbox",
    "Outbox",
    "OutboxDamaged",
    "OutboxEntry",
    "OutboxUnavailable",
    "PutResult",
    "Remember",
    "Salvaged",
    "SealedOutbox",
    "StoreError",
    "SystemdCredential",
    "crypto_erase",
    "data_dir_lock",
    "destroy_keys",
    "key_source_for",
    "load_or_create_key",
    "overwrite_and_remove",
    "remove_files",
    "salvage",
]
