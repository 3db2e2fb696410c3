"""`dho-gateway kit provision` and `install-cert`, as a technician runs them."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from gateway.kit.check import check_plan
from gateway.settings import load_settings
from protocol import Envelope, TrustedKey, TrustStore, encode_key
from tests.kit_support import Office, gateway
from tests.support import ROOT

ROOT_KEY = Ed25519PrivateKey.generate()  # the tenant's root, as `dho-central plan keygen --role root` makes it


def tenant_trust_store(tenant: str = "oslo-kommune", root: Ed25519PrivateKey = ROOT_KEY) -> bytes:
    """A trust store as `dho-central plan trust-store` writes it: one prescriber key, signed by the root."""
    now = datetime.now(UTC)
    key = TrustedKey(id="gp-hansen", role="prescriber", holder="Dr. Kari Hansen, GP",
                     public_key=encode_key(Ed25519PrivateKey.generate().public_key()),
                     not_before=now - timedelta(days=1), not_after=now + timedelta(days=365))
    store = TrustStore(tenant=tenant, version=1, issued=now - timedelta(days=1), keys=(key,))
    return Envelope(payload=store.model_dump(mode="json")).signed_by(root, "root-2026", "root").to_json()


def provision_args(tmp_path: Path, office: Office, *extra: str) -> list[str]:
    trust = tmp_path / "trust.json"
    trust.write_bytes(tenant_trust_store())
    return ["kit", "provision", "--config", str(tmp_path / "etc" / "gateway.toml"), "--gateway-id", "gw-0042",
            "--tenant", "oslo-kommune", "--broker", "mqtt.example.no:8883", "--broker-ca", str(office.server.ca_file),
            "--trust-store", str(trust), "--root-key", encode_key(ROOT_KEY.public_key()),
            "--profile", "standard-copd", "--data-dir", str(tmp_path / "var"), "--key-source", "file", *extra]


def test_provision_writes_a_configuration_the_gateway_accepts_with_its_keys(tmp_path: Path, office: Office) -> None:
    result = gateway(*provision_args(tmp_path, office, "--patient", "p-3c1f"))
    assert result.returncode == 0, result.stderr
    config = tmp_path / "etc" / "gateway.toml"
    settings = load_settings(config)
    g = settings.gateway
    assert (g.id, g.tenant, g.patient, g.key_source) == ("gw-0042", "oslo-kommune", "p-3c1f", "file")
    assert settings.device_source == "bluez" and settings.mqtt.insecure_dev is False
    assert (settings.mqtt.host, settings.mqtt.port) == ("mqtt.example.no", 8883)
    assert settings.zoning.profile == "standard-copd" and settings.zoning.enrolled is not None
    assert settings.plans.trust_store == tmp_path / "etc" / "trust-store.json"
    assert (tmp_path / "etc" / "trust-store.json").read_bytes() == tenant_trust_store_file(tmp_path)
    assert (tmp_path / "etc" / "ca.pem").read_bytes() == office.server.ca_file.read_bytes()
    for secret in (tmp_path / "etc" / "gateway.key", g.key_path):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(g.key_path.read_bytes()) == 32
    csr = x509.load_pem_x509_csr((tmp_path / "etc" / "gateway.csr").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-0042"
    # Issue 19.1: what the central needs to hear the kit, and the one command that registers it.
    registration = json.loads((tmp_path / "etc" / "registration.json").read_text())
    assert {k: registration[k] for k in ("gateway", "tenant", "patient", "reason")} == {
        "gateway": "gw-0042", "tenant": "oslo-kommune", "patient": "p-3c1f", "reason": "provision"}
    assert registration["csr"] == (tmp_path / "etc" / "gateway.csr").read_text()
    assert f"dho-central gateways register --db URL --ca CA {tmp_path / 'etc' / 'registration.json'}" in result.stdout


def test_provisioning_twice_without_force_changes_nothing_and_force_keeps_a_backup(
    tmp_path: Path, office: Office
) -> None:
    assert gateway(*provision_args(tmp_path, office)).returncode == 0
    config = tmp_path / "etc" / "gateway.toml"
    before = {p.name: p.read_bytes() for p in [*(tmp_path / "etc").iterdir(), *(tmp_path / "var").iterdir()]}
    patient = load_settings(config).gateway.patient
    assert patient.startswith("p-")  # a random pseudonym when none was given

    again = gateway(*provision_args(tmp_path, office))
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"dho-gateway: error: {config}: this kit is already provisioned as gateway gw-0042 (tenant oslo-kommune); "
        "nothing changed. --force provisions it again (the file is backed up); a new patient: "
        "`dho-gateway kit reissue`")
    assert {p.name: p.read_bytes() for p in [*(tmp_path / "etc").iterdir(), *(tmp_path / "var").iterdir()]} == before

    forced = gateway(*provision_args(tmp_path, office, "--force", "--profile", "standard-heart-failure"))
    assert forced.returncode == 0, forced.stderr
    backups = list((tmp_path / "etc").glob("gateway.toml.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == before["gateway.toml"]
    settings = load_settings(config)
    assert settings.zoning.profile == "standard-heart-failure" and settings.gateway.patient == patient
    # Same id: the client key and the KEK are kept (a new KEK beside an outbox would read nothing).
    assert (tmp_path / "etc" / "gateway.key").read_bytes() == before["gateway.key"]
    assert (tmp_path / "var" / "outbox.key").read_bytes() == before["outbox.key"]


def test_a_new_patient_is_refused_on_a_kit_that_holds_an_outbox(tmp_path: Path, office: Office) -> None:
    assert gateway(*provision_args(tmp_path, office, "--patient", "p-one")).returncode == 0
    (tmp_path / "var" / "outbox.sqlite3").write_bytes(b"")  # the service ran for p-one
    result = gateway(*provision_args(tmp_path, office, "--patient", "p-two", "--force"))
    assert result.returncode == 2 and "only through `dho-gateway kit reissue`" in result.stderr
    assert load_settings(tmp_path / "etc" / "gateway.toml").gateway.patient == "p-one"


def test_install_cert_takes_only_this_kits_certificate(tmp_path: Path, office: Office) -> None:
    assert gateway(*provision_args(tmp_path, office)).returncode == 0
    etc = tmp_path / "etc"
    office.ca.register("gw-0042")
    office.ca.register("gw-0043")
    from cryptography.hazmat.primitives import serialization

    mine = office.ca.sign((etc / "gateway.csr").read_bytes(), "gw-0042")
    (tmp_path / "mine.pem").write_bytes(mine.public_bytes(serialization.Encoding.PEM))
    other_cert, _ = office.server.issue("gw-0043")
    refused = gateway("kit", "install-cert", "--config", str(etc / "gateway.toml"), str(other_cert))
    assert refused.returncode == 2 and "is for gateway 'gw-0043', not this kit (gw-0042)" in refused.stderr
    assert not (etc / "gateway.pem").exists()
    installed = gateway("kit", "install-cert", "--config", str(etc / "gateway.toml"), str(tmp_path / "mine.pem"))
    assert installed.returncode == 0, installed.stderr
    assert (etc / "gateway.pem").read_bytes() == (tmp_path / "mine.pem").read_bytes()


@pytest.mark.skipif(shutil.which("systemd-creds") is None or os.geteuid() != 0,
                    reason="systemd-creds with the host key needs systemd and root")
def test_provision_makes_the_kek_as_an_encrypted_systemd_credential(tmp_path: Path, office: Office) -> None:
    store = tmp_path / "credstore" / "dho-outbox-kek"
    args = provision_args(tmp_path, office)
    args[args.index("--key-source") + 1] = "systemd-credential"
    result = gateway(*args, "--credential-store", str(store), "--with-key", "host")
    assert result.returncode == 0, result.stderr
    settings = load_settings(tmp_path / "etc" / "gateway.toml")
    assert settings.gateway.key_source == "systemd-credential" and settings.gateway.key_credential_store == store
    assert not (tmp_path / "var" / "outbox.key").exists()  # never a KEK in clear on the card
    clear = subprocess.run(["systemd-creds", "decrypt", "--name=dho-outbox-kek", str(store), "-"],
                           capture_output=True, check=True).stdout
    assert len(clear) == 32 and clear not in store.read_bytes()
    # The hand-over check reads it the way the unit would (decrypted by systemd-creds), and says when it is gone.
    from gateway.kit.check import check_kek

    found, kek = check_kek(settings)
    assert found.ok and kek == clear and found.detail == f"systemd-credential {store}"
    store.unlink()
    gone, _ = check_kek(settings)
    assert not gone.ok and gone.detail == f"no systemd credential {store}"


@pytest.mark.parametrize(("content", "said"), [
    (b"not a certificate at all\n", "is not a PEM certificate"),
    (None, "holds a certificate that is not a CA's"),  # the broker's own server certificate, given by mistake
])
def test_a_broker_ca_that_is_not_a_ca_certificate_is_refused_before_anything_is_written(
        tmp_path: Path, office: Office, content: bytes | None, said: str) -> None:
    wrong = tmp_path / "wrong.pem"
    if content is None:
        server_cert, _ = office.server.issue("mqtt.example.no", server=True)
        content = server_cert.read_bytes()
    wrong.write_bytes(content)
    args = provision_args(tmp_path, office)
    args[args.index("--broker-ca") + 1] = str(wrong)
    result = gateway(*args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{wrong}: the broker CA file" in result.stderr and said in result.stderr
    assert not (tmp_path / "etc").exists() and not (tmp_path / "var").exists()


def tenant_trust_store_file(tmp_path: Path) -> bytes:
    return (tmp_path / "trust.json").read_bytes()


@pytest.mark.parametrize(("drop", "store", "said"), [
    ("--root-key", None, "--trust-store needs --root-key"),
    (None, "another root", "is not signed by this tenant's root key"),
    (None, "another tenant", "is for tenant bergen-kommune, not oslo-kommune"),
])
def test_a_trust_store_the_gateway_could_not_check_is_refused_at_provisioning(
        tmp_path: Path, office: Office, drop: str | None, store: str | None, said: str) -> None:
    """Issue 19.2: the documented example (--trust-store without --root-key) made a kit that could not start."""
    args = provision_args(tmp_path, office)
    if drop is not None:
        del args[args.index(drop):args.index(drop) + 2]
    if store == "another root":
        (tmp_path / "trust.json").write_bytes(tenant_trust_store(root=Ed25519PrivateKey.generate()))
    elif store == "another tenant":
        (tmp_path / "trust.json").write_bytes(tenant_trust_store("bergen-kommune"))
    result = gateway(*args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr and "nothing changed" in result.stderr
    assert not (tmp_path / "etc").exists() and not (tmp_path / "var").exists()


def test_kit_check_and_status_say_when_the_service_would_refuse_the_trust_store(
        tmp_path: Path, office: Office) -> None:
    assert gateway(*provision_args(tmp_path, office)).returncode == 0
    config = tmp_path / "etc" / "gateway.toml"
    assert check_plan(load_settings(config)).ok
    text = config.read_text()
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("root_key")) + "\n")
    found = check_plan(load_settings(config))
    assert not found.ok and "plans.root_key is not" in found.detail and "will not start" in found.detail
    (tmp_path / "var" / "outbox.key").write_bytes(bytes(32))  # as after a first run, so status reads the outbox
    status = gateway("status", "--config", str(config))
    assert status.returncode == 1, status.stdout + status.stderr
    assert "FAULT: plans.trust_store is set but plans.root_key is not" in status.stdout


def provision_by_hand(args: list[str], typed: str) -> subprocess.CompletedProcess[str]:
    """`dho-gateway kit provision …` with `typed` at its prompts; its own session, so no terminal is there
    and getpass reads the typing from standard input, as when a technician pipes it in."""
    return subprocess.run([sys.executable, "-m", "gateway.service.cli", *args], input=typed, capture_output=True,
                          text=True, timeout=60, cwd=ROOT, start_new_session=True)


def test_provision_sets_the_technician_password_from_a_prompt(tmp_path: Path, office: Office) -> None:
    from gateway.web import verify_password

    done = provision_by_hand(provision_args(tmp_path, office, "--technician-password"),
                             "lang-og-hemmelig\nlang-og-hemmelig\n")
    assert done.returncode == 0, done.stderr
    settings = load_settings(tmp_path / "etc" / "gateway.toml")
    stored = settings.web.technician_password_hash
    assert stored is not None and verify_password("lang-og-hemmelig", stored)
    assert "lang-og-hemmelig" not in (tmp_path / "etc" / "gateway.toml").read_text()


@pytest.mark.parametrize(("typed", "said"), [
    ("", "no technician password given at the prompt"),  # Ctrl-D at once
    ("lang-og-hemmelig\nanother-one-typed\n", "did not match"),
    ("short\n", "at least 10 characters"),
])
def test_a_refused_password_prompt_is_one_line_and_writes_nothing(
        tmp_path: Path, office: Office, typed: str, said: str) -> None:
    done = provision_by_hand(provision_args(tmp_path, office, "--technician-password"), typed)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("dho-gateway: error: ") == 1 and done.stderr.endswith("nothing changed\n")
    assert said in done.stderr and "nothing changed" in done.stderr
    assert not (tmp_path / "etc").exists()


def test_provisioning_where_it_cannot_write_is_one_line(tmp_path: Path, office: Office) -> None:
    (tmp_path / "etc").write_text("a file where the configuration folder should be")
    result = gateway(*provision_args(tmp_path, office))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(tmp_path / "etc") in result.stderr and "run the command again" in result.stderr
