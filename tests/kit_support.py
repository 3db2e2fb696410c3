"""Helpers for the kit tests: a tenant CA, a TLS broker that trusts it, and a provisioned kit."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from central.ca import TenantCA
from central.embedded import EmbeddedCentral
from gateway.kit.provision import Provisioning, install_certificate, provision
from gateway.service.cli import main as gateway_main
from protocol import BrokerSettings
from tests.conftest import Mosquitto
from tests.pki import ThrowawayCA


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def gateway(*args: str) -> Ran:
    """`dho-gateway …` in process: its own main, output and exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = gateway_main(list(args))
    return Ran(code, out.getvalue(), err.getvalue())


@dataclass
class Office:
    """What the municipality's office has: the tenant CA, and the broker's own CA (server side)."""

    folder: Path
    ca: TenantCA
    server: ThrowawayCA

    @classmethod
    def create(cls, folder: Path) -> Office:
        folder.mkdir(parents=True, exist_ok=True)
        ca = TenantCA.create(folder / "tenant-ca", "oslo-kommune")
        return cls(folder, ca, ThrowawayCA(folder))

    def central(self, port: int, database: Path) -> EmbeddedCentral:
        """The central service on the office's broker, its workers with a tenant-CA certificate (CN dho-central)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dho-central")])).sign(key, hashes.SHA256())
        self.ca.register("dho-central")
        cert = self.ca.sign(csr.public_bytes(serialization.Encoding.PEM), "dho-central")
        key_file, cert_file = self.folder / "dho-central.key", self.folder / "dho-central.pem"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return EmbeddedCentral(BrokerSettings(host="127.0.0.1", port=port, ca_file=self.server.ca_file,
                                              cert_file=cert_file, key_file=key_file), database)

    def broker(self) -> Mosquitto:
        cert, key = self.server.issue("localhost", server=True)
        return Mosquitto(self.folder, "\n".join([
            f"cafile {self.ca.cert_file}", f"crlfile {self.ca.crl_file}", f"certfile {cert}", f"keyfile {key}",
            "require_certificate true", "use_identity_as_username true", "tls_version tlsv1.2", ""]))


def provisioning(root: Path, office: Office, port: int, *, gateway_id: str = "gw-kit-1",
                 patient: str | None = "p-first") -> Provisioning:
    return Provisioning(
        config=root / "etc" / "gateway.toml", gateway_id=gateway_id, tenant="oslo-kommune",
        broker_host="127.0.0.1", broker_port=port, broker_ca=office.server.ca_file, profile="standard-copd",
        patient=patient, data_dir=root / "var", key_source="file")


def provisioned_kit(root: Path, office: Office, port: int, *, days: int = 365, gateway_id: str = "gw-kit-1") -> Path:
    """A kit provisioned, its CSR signed by the tenant CA and the certificate installed."""
    done = provision(provisioning(root, office, port, gateway_id=gateway_id))
    office.ca.register(gateway_id)
    cert = office.ca.sign(done.csr.read_bytes(), gateway_id, days=days)
    from cryptography.hazmat.primitives import serialization

    signed = root / "signed.pem"
    signed.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    install_certificate(done.config, signed)
    return done.config
