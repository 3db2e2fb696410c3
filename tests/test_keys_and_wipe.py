"""Key lifecycle: wrapped data keys, rotation, and the crypto-erase used when a kit is wiped."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from gateway.readings import uuid7
from gateway.storage import KeyFile, SealedOutbox, crypto_erase, destroy_keys, load_or_create_key, remove_files

SECRET = b'{"patient":"p-42","systolic":171}'


def open_store(folder: Path) -> SealedOutbox:
    return SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))


def test_rotation_seals_new_records_under_the_new_key_and_old_ones_stay_readable(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    old = [str(uuid7()) for _ in range(3)]
    for rid in old:
        store.put(rid, b"old")
    assert store.rotate() == 2
    new = str(uuid7())
    store.put(new, b"new")
    store.close()
    store = open_store(tmp_path)  # the wrapped keys survive a restart
    assert store.key_version == 2
    assert [(e.id, e.payload) for e in store.pending(0, 10)] == [(r, b"old") for r in old] + [(new, b"new")]
    assert store.retire_unused_keys() == []  # old records still need key 1
    store.acknowledge(old)
    assert store.retire_unused_keys() == [1]
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    assert db.execute("SELECT key_version FROM outbox").fetchall() == [(2,)]
    assert db.execute("SELECT version FROM data_keys").fetchall() == [(2,)]


def test_crypto_erase_leaves_nothing_that_opens_a_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = open_store(data)
    for _ in range(20):
        store.put(str(uuid7()), SECRET)
    wrapped = sqlite3.connect(data / "outbox.sqlite3").execute("SELECT wrapped FROM data_keys").fetchone()[0]
    store.close()
    kek = (data / "outbox.key").read_bytes()  # worst case: an attacker later recovers the KEK from flash

    assert destroy_keys(data / "outbox.sqlite3", KeyFile(data / "outbox.key")) == [data / "outbox.key"]
    image = tmp_path / "image"  # what a forensic copy of the card would hold after the keys are gone
    image.mkdir()
    for f in data.iterdir():
        shutil.copy(f, image / f.name)
    assert not (data / "outbox.key").exists()
    assert all(bytes(wrapped) not in f.read_bytes() for f in image.iterdir())  # overwritten, not just unlinked
    (image / "outbox.key").write_bytes(kek)
    (image / "outbox.key").chmod(0o600)
    recovered = open_store(image)
    assert recovered.pending(0, 100) == []  # not one record opens, even with the KEK
    assert recovered.quarantined() == 20
    recovered.close()

    assert {p.name for p in remove_files(data / "outbox.sqlite3")} >= {"outbox.sqlite3"}
    assert list(data.iterdir()) == []


def test_crypto_erase_of_a_kit_that_never_ran(tmp_path: Path) -> None:
    assert crypto_erase(tmp_path / "outbox.sqlite3", KeyFile(tmp_path / "outbox.key")) == []
