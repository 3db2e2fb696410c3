"""The outbox key from a systemd credential, as the shipped unit provides it in production."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import load_settings
from gateway.storage import KeyFileError, SealedOutbox, StoreError, SystemdCredential
from tests.support import ROOT, cli, config_for

UNIT = ROOT / "systemd" / "dho-gateway.service"
NAME = "dho-outbox-kek"


def _credential_env(credentials: Path) -> dict[str, str]:
    # What systemd sets for the service: the decrypted credential's folder, and the unit's Environment=.
    return {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials), "DHO_GATEWAY__KEY_SOURCE": "systemd-credential"}


def _fill_outbox(config: Path, env: dict[str, str], n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(config)
    from gateway.storage import key_source_for

    store = SealedOutbox(settings.gateway.outbox_path, key_source_for(settings.gateway).load(create=True))
    for i in range(n):
        store.put(f"r{i}", b"reading")
    store.close()


def _provisioned(tmp_path: Path, readings: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A kit whose KEK systemd hands over as a credential, with `readings` sealed in its outbox."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / NAME).write_bytes(os.urandom(32))
    config = config_for(tmp_path, 1883)
    _fill_outbox(config, _credential_env(credentials), readings, monkeypatch)
    return credentials, config


def test_the_credential_seals_the_outbox_and_no_key_file_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials, config = _provisioned(tmp_path, 3, monkeypatch)
    status = cli("status", "--json", "--config", str(config), env=_credential_env(credentials))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["outbox_depth"] == 3
    assert not (tmp_path / "outbox.key").exists()  # the secret never lands on the card in clear


def test_a_missing_or_wrong_credential_is_a_clear_error_and_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials, config = _provisioned(tmp_path, 2, monkeypatch)
    before = (tmp_path / "outbox.sqlite3").read_bytes()

    outside = {k: v for k, v in _credential_env(credentials).items() if k != "CREDENTIALS_DIRECTORY"}
    run = cli("run", "--config", str(config), env=outside)
    assert run.returncode == 2 and "$CREDENTIALS_DIRECTORY is not set" in run.stderr

    (credentials / NAME).unlink()
    run = cli("run", "--config", str(config), env=_credential_env(credentials))
    assert run.returncode == 2 and "LoadCredentialEncrypted=dho-outbox-kek" in run.stderr

    (credentials / NAME).write_bytes(os.urandom(32))  # another kit's key
    run = cli("run", "--config", str(config), env=_credential_env(credentials))
    assert run.returncode == 2 and "sealed under another key" in run.stderr and "Traceback" not in run.stderr
    assert (tmp_path / "outbox.sqlite3").read_bytes() == before

    (credentials / NAME).write_bytes(b"short")
    with pytest.raises(KeyFileError, match="holds 5 bytes"):
        SystemdCredential(NAME, tmp_path / "store", credentials).load(create=True)
    with pytest.raises(StoreError):
        SealedOutbox(tmp_path / "outbox.sqlite3", os.urandom(32))


@pytest.mark.skipif(shutil.which("systemd-creds") is None or os.geteuid() != 0,
                    reason="systemd-creds with the host key needs systemd and root")
def test_real_systemd_creds_round_trip_and_wipe_destroys_the_encrypted_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "credstore.encrypted" / NAME
    store.parent.mkdir()
    kek = os.urandom(32)
    subprocess.run(["systemd-creds", "encrypt", f"--name={NAME}", "--with-key=host", "-", str(store)],
                   input=kek, check=True, capture_output=True)
    assert kek not in store.read_bytes()
    credentials = tmp_path / "credentials"  # what systemd does at service start, by hand
    credentials.mkdir()
    subprocess.run(["systemd-creds", "decrypt", f"--name={NAME}", str(store), str(credentials / NAME)],
                   check=True, capture_output=True)
    config = config_for(tmp_path, 1883)
    env = {**_credential_env(credentials), "DHO_GATEWAY__KEY_CREDENTIAL_STORE": str(store)}
    _fill_outbox(config, env, 4, monkeypatch)

    wipe = cli("wipe", "--config", str(config), "--yes", env=env)
    assert wipe.returncode == 0, wipe.stderr
    assert f"destroyed {store}" in wipe.stdout
    assert not store.exists() and not (tmp_path / "outbox.sqlite3").exists()


def test_the_shipped_unit_provides_what_the_settings_expect() -> None:
    unit = UNIT.read_text()
    defaults = load_settings(ROOT / "config" / "gateway.example.toml").gateway
    assert f"LoadCredentialEncrypted={defaults.key_credential}:{defaults.key_credential_store}" in unit
    assert "Environment=DHO_GATEWAY__KEY_SOURCE=systemd-credential" in unit
    assert f"StateDirectory={defaults.data_dir.name}" in unit and str(defaults.data_dir) == "/var/lib/dho-gateway"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    gateway = shutil.which("dho-gateway") or str(Path(sys.executable).parent / "dho-gateway")
    unit = tmp_path / "dho-gateway.service"
    unit.write_text(UNIT.read_text().replace("/opt/dho-gateway/bin/dho-gateway", gateway))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "", run.stderr
