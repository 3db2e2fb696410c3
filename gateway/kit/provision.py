"""`kit provision`: a kit's identity, keys, broker, trust store and patient, written as its configuration.

Files beside the configuration (the folder of `--config`, /etc/dho-gateway on a box):
`gateway.key` (the client key, 0600, never leaves the box), `gateway.csr` (to be signed by the tenant's
CA: `dho-central ca sign`), `gateway.pem` (the signed certificate, installed by `kit install-cert`),
`ca.pem` (the broker's CA) and `trust-store.json` (the tenant's plan trust store), both copied in.
The outbox KEK is a 0600 file in data_dir or an encrypted systemd credential (`systemd-creds`).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from gateway.kit import config_file
from gateway.plans import check_provisioned_trust
from gateway.settings import ConfigError, PlansSection, Settings, load_settings
from gateway.storage import KeyFileError, load_or_create_key

KeySourceName = Literal["file", "systemd-credential"]
_KEK_BYTES = 32  # AES-256, as gateway.storage reads it


class ProvisionError(ConfigError):
    """Provisioning refused; nothing was changed."""


@dataclass
class Provisioning:
    config: Path
    gateway_id: str
    tenant: str
    broker_host: str
    broker_port: int
    broker_ca: Path
    profile: str
    patient: str | None = None  # None: a new random pseudonym
    trust_store: Path | None = None
    root_key: str | None = None
    data_dir: Path = Path("/var/lib/dho-gateway")
    key_source: KeySourceName = "file"
    credential_store: Path = Path("/etc/credstore.encrypted/dho-outbox-kek")
    credential_key: str = "auto"  # systemd-creds --with-key: host, tpm2, auto
    timezone: str = "Europe/Oslo"
    language: str = "nb"
    force: bool = False
    technician_password_hash: str | None = None  # scrypt, from `--technician-password`; None keeps what is there


@dataclass
class Provisioned:
    config: Path
    patient: str
    csr: Path
    key: Path
    backup: Path | None
    created: list[str] = field(default_factory=list)


def new_pseudonym() -> str:
    """A patient pseudonym with nothing of the person in it (the central maps it to the patient)."""
    return f"p-{secrets.token_hex(6)}"


REGISTRATION = "registration.json"


def write_registration(config: Path, *, reissue: bool = False) -> Path:
    """`registration.json` beside the configuration: what the central service needs to hear this kit (id,
    tenant, patient pseudonym, the CSR), for `dho-central gateways register`. After a reissue it is the
    re-registration (`"reason": "reissue"`): the central records the old and the new pseudonym in its audit."""
    settings = load_settings(config)
    g = settings.gateway
    csr = identity_paths(config)["csr"]
    data = {"kind": "dho-gateway-registration", "v": 1, "gateway": g.id, "tenant": g.tenant, "patient": g.patient,
            "reason": "reissue" if reissue else "provision", "made": datetime.now(UTC).isoformat(timespec="seconds"),
            "csr": csr.read_text() if csr.exists() else None}
    path = config.with_name(REGISTRATION)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def identity_paths(config: Path) -> dict[str, Path]:
    folder = config.parent
    return {"key": folder / "gateway.key", "csr": folder / "gateway.csr", "cert": folder / "gateway.pem",
            "ca": folder / "ca.pem", "trust_store": folder / "trust-store.json"}


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.touch(mode=0o600)
    tmp.write_bytes(data)
    tmp.replace(path)


def make_client_key_and_csr(gateway_id: str, key_path: Path, csr_path: Path) -> bool:
    """The client key (kept if it exists and its CSR already names this gateway) and a CSR whose CN is
    the gateway id. True if a new key was made."""
    if key_path.exists() and csr_path.exists():
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names and names[0].value == gateway_id:
            return False
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)])).sign(key, hashes.SHA256()))
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return True


def create_kek(key_source: KeySourceName, key_path: Path, credential_name: str, store: Path,
               with_key: str = "auto") -> bool:
    """A new outbox KEK where none exists; True if one was made. Never replaces an existing one."""
    if key_source == "file":
        if key_path.exists():
            load_or_create_key(key_path)  # checks mode and length
            return False
        load_or_create_key(key_path)
        return True
    if store.exists():
        return False
    tool = shutil.which("systemd-creds")
    if tool is None:
        raise KeyFileError("systemd-creds is not installed: use --key-source file, or install systemd")
    store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = subprocess.run(  # noqa: S603  (our own arguments; the secret goes through a pipe, never a file)
        [tool, "encrypt", f"--name={credential_name}", f"--with-key={with_key}", "-", str(store)],
        input=secrets.token_bytes(_KEK_BYTES), capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise KeyFileError(f"systemd-creds could not make {store}: {result.stderr.decode(errors='replace').strip()}")
    return True


def _copy_in(source: Path, target: Path, what: str) -> None:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{source}: the {what} cannot be read: {exc.strerror}") from None
    if source.resolve() != target.resolve():
        target.write_bytes(data)


def _check_ca_certificates(path: Path, what: str) -> None:
    """The file must hold PEM CA certificates (a broker CA that is a key, a CSR or junk would only fail at the
    first TLS handshake, after the kit has left the office)."""
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ProvisionError(f"{path}: the {what} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise ProvisionError(f"{path}: the {what} is not a PEM certificate; nothing changed") from None
    for cert in found:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ProvisionError(f"{path}: the {what} holds a certificate that is not a CA's "
                                 f"({cert.subject.rfc4514_string()}); give the CA that signed the broker's "
                                 "certificate; nothing changed")


def _check_trust(p: Provisioning) -> None:
    """A trust store is checked against the root key as `run` will check it: a kit that cannot start must
    not leave the office (issue 19.2: `--trust-store` without `--root-key` made exactly that)."""
    if p.trust_store is None:
        return
    if p.root_key is None:
        raise ProvisionError("--trust-store needs --root-key, the tenant's root public key that signed it "
                             "(`dho-central plan keygen` printed it): without it the gateway cannot check the "
                             "store and will not start; nothing changed")
    try:
        plans = PlansSection(trust_store=p.trust_store, root_key=p.root_key)
        check_provisioned_trust(plans, p.tenant)
    except ValidationError:
        raise ProvisionError("--root-key: not an Ed25519 public key (32 bytes, base64); nothing changed") from None
    except ConfigError as exc:
        raise ProvisionError(f"{str(exc).removeprefix('plans.trust_store: ')}; nothing changed") from None


def _existing(config: Path) -> Settings | None:
    return load_settings(config) if config.exists() else None


def provision(p: Provisioning) -> Provisioned:
    earlier = _existing(p.config)
    if earlier is not None and not p.force:
        g = earlier.gateway
        raise ProvisionError(
            f"{p.config}: this kit is already provisioned as gateway {g.id} (tenant {g.tenant}); nothing changed. "
            "--force provisions it again (the file is backed up); a new patient: `dho-gateway kit reissue`")
    patient = p.patient or (earlier.gateway.patient if earlier else None) or new_pseudonym()
    if earlier is not None and earlier.gateway.patient != patient and earlier.gateway.outbox_path.exists():
        raise ProvisionError(
            f"{p.config}: the kit holds patient {earlier.gateway.patient}'s outbox; a new patient only through "
            "`dho-gateway kit reissue` (it wipes first); nothing changed")
    _check_ca_certificates(p.broker_ca, "broker CA file")
    _check_trust(p)
    paths = identity_paths(p.config)
    p.config.parent.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    _copy_in(p.broker_ca, paths["ca"], "broker CA file")
    if p.trust_store is not None:
        _copy_in(p.trust_store, paths["trust_store"], "trust store")
    if make_client_key_and_csr(p.gateway_id, paths["key"], paths["csr"]):
        created.append(f"client key {paths['key']} and CSR {paths['csr']}")
    key_path = p.data_dir / "outbox.key"
    if create_kek(p.key_source, key_path, "dho-outbox-kek", p.credential_store, p.credential_key):
        created.append(f"outbox KEK ({key_path if p.key_source == 'file' else p.credential_store})")

    data: config_file.Table = config_file.read(p.config) if earlier is not None else {}
    data["device_source"] = "bluez"
    gateway: config_file.Table = {
        "id": p.gateway_id, "tenant": p.tenant, "patient": patient, "data_dir": str(p.data_dir),
        "key_source": p.key_source, "timezone": p.timezone,
    }
    if p.key_source == "systemd-credential":
        gateway["key_credential_store"] = str(p.credential_store)
    data["gateway"] = {**data.get("gateway", {}), **gateway}
    data["mqtt"] = {**data.get("mqtt", {}), "host": p.broker_host, "port": p.broker_port, "protocol": "5",
                    "ca_file": str(paths["ca"]), "cert_file": str(paths["cert"]), "key_file": str(paths["key"]),
                    "insecure_dev": False}
    zoning = {**data.get("zoning", {}), "profile": p.profile, "language": p.language}
    if earlier is None or earlier.gateway.patient != patient:
        zoning["enrolled"] = date.today()
    data["zoning"] = zoning
    if p.trust_store is not None or p.root_key is not None:
        plans = dict(data.get("plans", {}))
        if p.trust_store is not None:
            plans["trust_store"] = str(paths["trust_store"])
        if p.root_key is not None:
            plans["root_key"] = p.root_key
        data["plans"] = plans
    if p.technician_password_hash is not None:
        data["web"] = {**data.get("web", {}), "technician_password_hash": p.technician_password_hash}
    data.setdefault("devices", [])
    backup = config_file.write(p.config, data)
    write_registration(p.config)
    return Provisioned(p.config, patient, paths["csr"], paths["key"], backup, created)


def install_certificate(config: Path, cert_file: Path) -> x509.Certificate:
    """Install the certificate the tenant's CA signed: it must name this gateway and fit its key."""
    settings = load_settings(config)
    paths = identity_paths(config)
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"{cert_file}: not a PEM certificate ({exc})") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != settings.gateway.id:
        named = names[0].value if names else None
        raise ProvisionError(f"{cert_file} is for gateway {named!r}, not this kit ({settings.gateway.id}); "
                             "nothing installed")
    key = serialization.load_pem_private_key(paths["key"].read_bytes(), password=None)
    if cert.public_key() != key.public_key():
        raise ProvisionError(f"{cert_file} was not made from this kit's key {paths['key']} (an old CSR?); "
                             "nothing installed")
    target = Path(settings.mqtt.cert_file or paths["cert"])
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.replace(target)
    return cert
