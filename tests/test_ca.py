"""The tenant CA (`dho-central ca`): certificates a real Mosquitto accepts, and refuses once revoked."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import io
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.ca import CAError, TenantCA
from central.cli import main
from protocol import BrokerSettings, make_client
from tests.conftest import Mosquitto
from tests.pki import ThrowawayCA


def central(*args: str) -> subprocess.CompletedProcess[str]:
    """`dho-central …` in process (the command's own main, its output and exit code)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["dho-central", *args], code, out.getvalue(), err.getvalue())


def gateway_key_and_csr(folder: Path, gateway: str) -> tuple[Path, Path]:
    """What a kit makes at provisioning: its own key (never leaves the box) and a CSR for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway)])).sign(key, hashes.SHA256()))
    key_file, csr_file = folder / f"{gateway}.key", folder / f"{gateway}.csr"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key_file, csr_file


@pytest.fixture
def tenant_ca(tmp_path: Path) -> TenantCA:
    result = central("ca", "--dir", str(tmp_path / "ca"), "init", "--tenant", "oslo-kommune")
    assert result.returncode == 0, result.stderr
    assert central("ca", "--dir", str(tmp_path / "ca"), "register", "gw-1", "gw-2").returncode == 0
    return TenantCA(tmp_path / "ca")


def enrol(tmp_path: Path, ca: TenantCA, gateway: str) -> tuple[Path, Path]:
    key_file, csr_file = gateway_key_and_csr(tmp_path, gateway)
    cert_file = tmp_path / f"{gateway}.pem"
    result = central("ca", "--dir", str(ca.folder), "sign", "--gateway", gateway, "--csr", str(csr_file),
                     "--out", str(cert_file))
    assert result.returncode == 0, result.stderr
    return cert_file, key_file


class Broker:
    """Mosquitto with the tenant CA as cafile and its CRL as crlfile."""

    def __init__(self, folder: Path, ca: TenantCA) -> None:
        server = ThrowawayCA(folder)  # the broker's own certificate: another CA, as in production
        self.server_ca = server.ca_file
        cert, key = server.issue("localhost", server=True)
        self.conf = "\n".join([f"cafile {ca.cert_file}", f"crlfile {ca.crl_file}", f"certfile {cert}",
                               f"keyfile {key}", "require_certificate true", "use_identity_as_username true",
                               "tls_version tlsv1.2", ""])
        self.folder = folder
        self.current = Mosquitto(folder, self.conf)

    def reload(self) -> None:
        """What `systemctl reload mosquitto` does: SIGHUP; Mosquitto reads its crlfile again."""
        assert self.current.process is not None
        self.current.process.send_signal(signal.SIGHUP)

    def settings(self, cert: Path, key: Path) -> BrokerSettings:
        return BrokerSettings(host="127.0.0.1", port=self.current.port, ca_file=self.server_ca, cert_file=cert,
                              key_file=key)


@pytest.fixture
def broker(tmp_path: Path, tenant_ca: TenantCA) -> Iterator[Broker]:
    b = Broker(tmp_path, tenant_ca)
    b.current.start()
    yield b
    b.current.stop()


async def connects(settings: BrokerSettings, client_id: str) -> bool:
    try:
        async with asyncio.timeout(10), make_client(settings, client_id) as client:
            await client.publish(f"probe/{client_id}", b"x", qos=1)
        return True
    except aiomqtt.MqttError:
        return False


def tls_refusal(settings: BrokerSettings) -> str:
    """The broker's TLS answer to this client certificate: '' when accepted, else the alert it sent."""
    context = settings.tls_context()
    assert context is not None
    with socket.create_connection((settings.host, settings.port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.settimeout(0.5)
                with contextlib.suppress(TimeoutError):
                    tls.recv(1)  # the server's verdict on our certificate arrives after the handshake in TLS 1.3
        except ssl.SSLError as exc:
            return str(exc)
    return ""


async def test_a_revoked_gateway_is_refused_by_mosquitto_and_the_others_still_connect(
    tmp_path: Path, tenant_ca: TenantCA, broker: Broker
) -> None:
    gw1, gw2 = enrol(tmp_path, tenant_ca, "gw-1"), enrol(tmp_path, tenant_ca, "gw-2")
    assert await connects(broker.settings(*gw1), "gw-1")
    assert await connects(broker.settings(*gw2), "gw-2")

    result = central("ca", "--dir", str(tenant_ca.folder), "revoke", "gw-1", "--reason", "kit lost")
    assert result.returncode == 0 and "revoked" in result.stdout
    broker.reload()  # the broker reads the new list
    deadline = time.monotonic() + 10
    while "CERTIFICATE_REVOKED" not in tls_refusal(broker.settings(*gw1)):
        assert time.monotonic() < deadline, "the broker still accepts the revoked gateway after a reload"
        await asyncio.sleep(0.1)
    assert tls_refusal(broker.settings(*gw2)) == ""
    assert await connects(broker.settings(*gw2), "gw-2")
    revoked = x509.load_pem_x509_crl(tenant_ca.crl_file.read_bytes())
    serial = x509.load_pem_x509_certificate(gw1[0].read_bytes()).serial_number
    assert revoked.get_revoked_certificate_by_serial_number(serial) is not None
    assert revoked.next_update_utc is not None and revoked.next_update_utc > dt.datetime.now(dt.UTC)


def test_the_certificate_names_the_gateway_for_client_authentication_only(tmp_path: Path, tenant_ca: TenantCA) -> None:
    cert_file, _ = enrol(tmp_path, tenant_ca, "gw-1")
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-1"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "oslo-kommune"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(tenant_ca.cert_file.read_bytes()))


def test_a_csr_with_another_gateways_id_is_refused_with_one_line(tmp_path: Path, tenant_ca: TenantCA) -> None:
    _, csr = gateway_key_and_csr(tmp_path, "gw-2")
    result = central("ca", "--dir", str(tenant_ca.folder), "sign", "--gateway", "gw-1", "--csr", str(csr),
                     "--out", str(tmp_path / "x.pem"))
    assert result.returncode == 2 and not (tmp_path / "x.pem").exists()
    assert result.stderr.strip() == ("dho-central: error: the CSR names gateway 'gw-2', not 'gw-1': a certificate "
                                     "for another gateway's id would let this box write into that gateway's "
                                     "topics; refused")
    assert tenant_ca.issued() == []


def test_an_unregistered_gateway_or_a_forged_csr_gets_nothing(tmp_path: Path, tenant_ca: TenantCA) -> None:
    _, csr = gateway_key_and_csr(tmp_path, "gw-9")
    with pytest.raises(CAError, match="not registered with tenant 'oslo-kommune'"):
        tenant_ca.sign(csr.read_bytes(), "gw-9")
    with pytest.raises(CAError, match="not a PEM certificate signing request"):
        tenant_ca.sign(b"hello", "gw-1")
    # A CSR whose subject was edited after signing: its signature no longer holds.
    _, good = gateway_key_and_csr(tmp_path, "gw-1")
    der = x509.load_pem_x509_csr(good.read_bytes()).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"gw-1", b"gw-2")
    pem = (b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(tampered)
           + b"-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(CAError, match="signature does not hold"):
        tenant_ca.sign(pem, "gw-2")
    assert tenant_ca.issued() == []


def test_renewal_only_when_due_keeps_the_key_and_never_renews_a_revoked_gateway(
    tmp_path: Path, tenant_ca: TenantCA
) -> None:
    cert_file, _ = enrol(tmp_path, tenant_ca, "gw-1")
    old = x509.load_pem_x509_certificate(cert_file.read_bytes())
    result = central("ca", "--dir", str(tenant_ca.folder), "renew", "--cert", str(cert_file))
    assert result.returncode == 0 and "not renewed" in result.stdout
    assert cert_file.read_bytes() == old.public_bytes(serialization.Encoding.PEM)

    # Due: it expires within 400 days.
    result = central("ca", "--dir", str(tenant_ca.folder), "renew", "--cert", str(cert_file), "--within-days", "400")
    assert result.returncode == 0, result.stderr
    new = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert new.serial_number != old.serial_number
    assert new.public_key() == old.public_key() and new.subject == old.subject
    assert [i.gateway for i in tenant_ca.due(400)] == ["gw-1"] and tenant_ca.due(30) == []

    tenant_ca.revoke("gw-1", "kit returned")
    with pytest.raises(CAError, match="was revoked"):
        tenant_ca.renew(cert_file.read_bytes(), force=True)


def test_a_second_ca_in_the_same_folder_is_refused(tmp_path: Path, tenant_ca: TenantCA) -> None:
    result = central("ca", "--dir", str(tenant_ca.folder), "init", "--tenant", "oslo-kommune")
    assert result.returncode == 2 and "already holds a CA" in result.stderr


@pytest.fixture
def world_readable_folder() -> Iterator[Path]:
    """A folder outside pytest's 0700 tmp tree, as /etc/mosquitto is: the broker's own user must reach it."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="dho-broker-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def start_broker(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    """`mosquitto -c conf`, as the init system starts it (as root: it drops to user mosquitto)."""
    from tests.conftest import mosquitto_binary

    with log.open("wb") as out:
        return subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)


async def test_the_broker_runs_on_the_files_ca_broker_writes_as_its_own_user(
        world_readable_folder: Path) -> None:
    """Issue 19.5: the CA, the broker's certificate and its configuration, used exactly as written: Mosquitto
    started by root reads them as user mosquitto (the CA folder was 0700 before: Permission denied)."""
    import os
    import pwd

    from tests.conftest import free_port

    if os.geteuid() != 0:
        pytest.skip("the broker drops to its own user only when started as root (CI runs as root)")
    pwd.getpwnam("mosquitto")  # Debian's mosquitto package creates it; a KeyError here is a broken install
    base = world_readable_folder
    assert central("ca", "--dir", str(base / "ca"), "init", "--tenant", "oslo-kommune").returncode == 0
    assert central("ca", "--dir", str(base / "ca"), "register", "gw-1").returncode == 0
    port = free_port()
    made = central("ca", "--dir", str(base / "ca"), "broker", "--host", "localhost", "--ip", "127.0.0.1",
                   "--out", str(base / "broker"), "--port", str(port))
    assert made.returncode == 0, made.stderr
    assert f"--broker-ca {base / 'ca' / 'ca.pem'}" in made.stdout
    ca = TenantCA(base / "ca")
    (base / "broker" / "acl").write_text("user gw-1\ntopic write dho/v1/oslo-kommune/gw-1/up/#\n")
    conf = (base / "broker" / "mosquitto.conf").read_text()
    assert f"cafile {ca.cert_file}" in conf and f"crlfile {ca.crl_file}" in conf
    log = base / "mosquitto.log"
    broker = start_broker(base / "broker" / "mosquitto.conf", log)
    try:
        cert, key = enrol(base, ca, "gw-1")
        for path in (cert, key, base / "gw-1.csr"):
            path.chmod(0o600)
        settings = BrokerSettings(host="127.0.0.1", port=port, ca_file=ca.cert_file, cert_file=cert, key_file=key)
        deadline = time.monotonic() + 10
        while not await connects(settings, "gw-1"):
            assert broker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        (base / "other").mkdir()
        other = ThrowawayCA(base / "other")  # a certificate from any other CA is refused
        foreign_cert, foreign_key = other.issue("gw-1")
        foreign = settings.model_copy(update={"cert_file": foreign_cert, "key_file": foreign_key})
        assert "unknown ca" in await asyncio.to_thread(tls_refusal, foreign)
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_a_gateway_certificate_can_never_pass_for_the_broker(tenant_ca: TenantCA, tmp_path: Path) -> None:
    """The broker's certificate says serverAuth and names its host; a gateway's says clientAuth and names no
    host, so a stolen kit cannot pose as the broker to other kits of the tenant."""
    cert_file, _ = enrol(tmp_path, tenant_ca, "gw-1")
    gateway_cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    server, _ = tenant_ca.issue_broker(["mqtt.oslo.kommune.no"], ["127.0.0.1"])
    usage = x509.ExtendedKeyUsage
    assert list(server.extensions.get_extension_for_class(usage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(gateway_cert.extensions.get_extension_for_class(usage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        gateway_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    with pytest.raises(CAError, match="not an IP address"):
        tenant_ca.issue_broker([], ["mqtt.oslo.kommune.no"])
