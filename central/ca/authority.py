"""A tenant's gateway certificate authority: one folder per tenant.

The folder holds the CA key (0600) and certificate, `gateways.json` (the gateways the tenant has
registered, and every certificate issued with its serial, expiry and revocation), and `crl.pem`, the
revocation list the broker reads (Mosquitto `crlfile`). A gateway's client certificate carries the
gateway id as its CN, which the broker uses as the MQTT username and the ACL keys on
(config/mosquitto.example.conf): a CSR naming any other id than the gateway being enrolled is refused.

Files are replaced atomically (temporary file, fsync, rename): a power cut leaves the old CA state or
the new one, never half a registry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.errors import CentralError

GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the gateway's own rule for its id
CA_DAYS = 3650
CERT_DAYS = 365
RENEW_WITHIN_DAYS = 30
CRL_DAYS = 7  # the broker refuses every client once the CRL is past next_update: refresh it daily


class CAError(CentralError):
    """A CA operation refused; the message says why and what to do."""


@dataclass
class Issued:
    """One certificate the CA issued: its serial, the gateway it names, its expiry and, once revoked,
    when and why (the CRL is written from these).
    """

    serial: int
    gateway: str
    not_after: str  # ISO 8601, UTC
    revoked_at: str | None = None
    reason: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _check_id(gateway: str) -> None:
    if not GATEWAY_ID.match(gateway):
        raise CAError(f"{gateway!r} is not a gateway id (letters, digits, . _ -; at most 64)")


def common_name(name: x509.Name) -> str | None:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(found) != 1:
        return None
    value = found[0].value
    return value if isinstance(value, str) else value.decode()


class TenantCA:
    """One tenant's gateway CA in its folder (module docstring): create it once, register gateway ids,
    sign their CSRs, renew, revoke and write the CRL; the broker's server certificate too. Every
    refusal is a `CAError` with one line to act on.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key_file = folder / "ca.key"
        self.cert_file = folder / "ca.pem"
        self.registry_file = folder / "gateways.json"
        self.crl_file = folder / "crl.pem"

    # --- set-up ------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, tenant: str, *, days: int = CA_DAYS) -> TenantCA:
        _check_id(tenant)
        ca = cls(folder)
        if ca.key_file.exists() or ca.cert_file.exists():
            raise CAError(f"{folder} already holds a CA: a second one would orphan every certificate it issued")
        folder.mkdir(parents=True, exist_ok=True)
        # Searchable but not listable by others: the broker (user mosquitto) opens ca.pem and crl.pem in
        # place by name; ca.key and gateways.json are 0600.
        folder.chmod(0o711)
        key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, tenant),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"dho {tenant} gateway CA")])
        now = _now()
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA384())
        )
        write_atomically(ca.key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()), 0o600)
        write_atomically(ca.cert_file, _pem(cert))
        ca._save({"tenant": tenant, "gateways": [], "issued": []})
        ca.write_crl()
        return ca

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if not self.key_file.exists() or not self.cert_file.exists():
            raise CAError(f"{self.folder} holds no CA: create one with `dho-central ca init`")
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CAError(f"{self.key_file} is not this CA's key")
        return key, x509.load_pem_x509_certificate(self.cert_file.read_bytes())

    def _registry(self) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(self.registry_file.read_text())
        except FileNotFoundError:
            raise CAError(f"{self.folder} holds no CA: create one with `dho-central ca init`") from None
        return data

    def _save(self, data: dict[str, object]) -> None:
        write_atomically(self.registry_file, (json.dumps(data, indent=2) + "\n").encode(), 0o600)

    @property
    def tenant(self) -> str:
        return str(self._registry()["tenant"])

    def gateways(self) -> list[str]:
        return [str(g) for g in self._registry()["gateways"]]  # type: ignore[attr-defined]

    def issued(self) -> list[Issued]:
        return [Issued(**i) for i in self._registry()["issued"]]  # type: ignore[attr-defined]

    def _save_issued(self, issued: list[Issued], gateways: list[str] | None = None) -> None:
        data = self._registry()
        data["issued"] = [asdict(i) for i in issued]
        if gateways is not None:
            data["gateways"] = gateways
        self._save(data)

    # --- gateways ----------------------------------------------------------------------------
    def register(self, gateway: str) -> bool:
        """The tenant expects this gateway: only registered ids get certificates. False if known already."""
        _check_id(gateway)
        known = self.gateways()
        if gateway in known:
            return False
        self._save_issued(self.issued(), [*known, gateway])
        return True

    def sign(self, csr_pem: bytes, gateway: str, *, days: int = CERT_DAYS) -> x509.Certificate:
        """Sign a gateway's CSR into its client certificate. Refused: a CSR that is not one, whose
        signature does not hold, whose CN is not `gateway`, or for a gateway the tenant never registered."""
        _check_id(gateway)
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise CAError("not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)") from None
        try:
            valid = csr.is_signature_valid
        except UnsupportedAlgorithm:
            valid = False
        if not valid:
            raise CAError("the CSR's signature does not hold: it was altered or not made with its own key")
        named = common_name(csr.subject)
        if named != gateway:
            raise CAError(f"the CSR names gateway {named!r}, not {gateway!r}: a certificate for another "
                          "gateway's id would let this box write into that gateway's topics; refused")
        if gateway not in self.gateways():
            raise CAError(f"gateway {gateway!r} is not registered with tenant {self.tenant!r}: "
                          f"`dho-central ca register {gateway}` first")
        public = csr.public_key()
        if not (isinstance(public, ec.EllipticCurvePublicKey)
                or (isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2048)):
            raise CAError("the CSR's key must be an EC key or RSA of at least 2048 bits")
        return self._issue(gateway, public, days=days)

    def _issue(self, gateway: str, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, *,
               days: int) -> x509.Certificate:
        key, ca_cert = self._load()
        now = _now()
        not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.tenant),
                                     x509.NameAttribute(NameOID.COMMON_NAME, gateway)]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA384())
        )
        self._save_issued([*self.issued(), Issued(cert.serial_number, gateway, not_after.isoformat())])
        return cert

    def issue_broker(self, names: list[str], addresses: list[str], *,
                     days: int = CERT_DAYS) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The broker's TLS server certificate and a new key: the host names and IP addresses gateways dial
        (subjectAltName; gateways check it), extended key usage serverAuth only, so it can never serve as a
        gateway's client certificate, and no gateway certificate (clientAuth, no subjectAltName) can serve
        as the broker's."""
        if not names and not addresses:
            raise CAError("give the broker's host name (--host) or IP address (--ip) that gateways connect to")
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        for address in addresses:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(address)))
            except ValueError:
                raise CAError(f"--ip {address!r}: not an IP address") from None
        key, ca_cert = self._load()
        server_key = ec.generate_private_key(ec.SECP384R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.tenant),
                                     x509.NameAttribute(NameOID.COMMON_NAME, (names or addresses)[0])]))
            .issuer_name(ca_cert.subject).public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA384())
        )
        return cert, server_key

    def current(self, gateway: str) -> Issued | None:
        """The gateway's newest certificate that is not revoked."""
        live = [i for i in self.issued() if i.gateway == gateway and i.revoked_at is None]
        return max(live, key=lambda i: i.not_after) if live else None

    def renew(self, cert_pem: bytes, *, within_days: int = RENEW_WITHIN_DAYS, days: int = CERT_DAYS,
              force: bool = False) -> x509.Certificate | None:
        """A new certificate for the same gateway and key, once its current one expires within
        `within_days` (None: not due yet). A revoked or foreign certificate is never renewed."""
        try:
            old = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise CAError("not a PEM certificate") from None
        _, ca_cert = self._load()
        try:
            old.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CAError(f"this certificate was not issued by tenant {self.tenant!r}'s CA") from None
        gateway = common_name(old.subject)
        record = next((i for i in self.issued() if i.serial == old.serial_number), None)
        if gateway is None or record is None:
            raise CAError("this CA has no record of that certificate")
        if record.revoked_at is not None:
            raise CAError(f"certificate {old.serial_number:x} of {gateway} was revoked on {record.revoked_at}: "
                          "a revoked gateway is not renewed (enrol it again with a new key if it is trusted again)")
        left = old.not_valid_after_utc - _now()
        if not force and left > dt.timedelta(days=within_days):
            return None
        public = old.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise CAError("unsupported key type in the old certificate")
        return self._issue(gateway, public, days=days)

    def due(self, within_days: int = RENEW_WITHIN_DAYS) -> list[Issued]:
        """Gateways whose newest live certificate expires within `within_days`."""
        limit = _now() + dt.timedelta(days=within_days)
        currents = [self.current(g) for g in self.gateways()]
        return [c for c in currents if c is not None and dt.datetime.fromisoformat(c.not_after) <= limit]

    def revoke(self, gateway: str, reason: str = "unspecified") -> list[int]:
        """Revoke every live certificate of the gateway and rewrite the CRL. Returns the serials."""
        issued = self.issued()
        when = _now().isoformat()
        serials = []
        for record in issued:
            if record.gateway == gateway and record.revoked_at is None:
                record.revoked_at, record.reason = when, reason
                serials.append(record.serial)
        if not serials:
            raise CAError(f"gateway {gateway!r} has no live certificate from this CA")
        self._save_issued(issued)
        self.write_crl()
        return serials

    def write_crl(self, *, days: int = CRL_DAYS) -> Path:
        key, ca_cert = self._load()
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                   .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=days)))
        for record in self.issued():
            if record.revoked_at is not None:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(record.serial)
                    .revocation_date(dt.datetime.fromisoformat(record.revoked_at)).build())
        crl = builder.sign(key, hashes.SHA384())
        write_atomically(self.crl_file, crl.public_bytes(serialization.Encoding.PEM))
        return self.crl_file
