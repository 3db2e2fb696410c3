"""The broker's side of mutual TLS: its server certificate from the tenant CA and a Mosquitto
configuration whose every file the broker can read (`dho-central ca broker`).

Mosquitto 2 drops to its own user (`mosquitto`) before it reads certificates, so every file it names
must be readable by that user: the CA certificate and the CRL are read in place from the CA folder
(0711: searchable, not listable; the CA key stays 0600), and the server key is handed to the broker's
user when this runs as root (otherwise the operator is told to).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from central.ca.authority import CERT_DAYS, TenantCA, write_atomically

BROKER_USER = "mosquitto"


@dataclass(frozen=True)
class BrokerFiles:
    """What `write_broker_files` wrote, and whether the key still needs handing to the broker's user."""

    conf: Path
    cert: Path
    key: Path
    acl: Path
    key_owner_set: bool
    not_after: str


def _conf(ca: TenantCA, folder: Path, port: int) -> str:
    return "\n".join([
        f"# Written by `dho-central ca broker` for tenant {ca.tenant}: mutual TLS on port {port}, the",
        "# certificate's CN (the gateway id) as the MQTT username, the per-gateway ACL, the tenant's CRL.",
        "# Put it in /etc/mosquitto/conf.d/ (or include it); after `dho-central ca revoke` or `ca crl`, and",
        "# after regenerating the ACL, reload the broker: systemctl reload mosquitto.",
        "per_listener_settings false",
        f"listener {port}",
        f"cafile {ca.cert_file}",
        f"crlfile {ca.crl_file}",
        f"certfile {folder / 'server.pem'}",
        f"keyfile {folder / 'server.key'}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        f"acl_file {folder / 'acl'}",
        "# Nagle's algorithm stalls windows of QoS 1 messages (measured: 2k/s -> 16.5k/s with this).",
        "set_tcp_nodelay true",
        "# The gateways' sync.window (default 8, at most 20) fits within this.",
        "max_inflight_messages 20",
        "",
    ])


def _hand_to_broker(path: Path) -> bool:
    """Make the broker's user own `path` (only root can); False when that is not possible here."""
    try:
        user = pwd.getpwnam(BROKER_USER)
    except KeyError:
        return False
    if os.geteuid() != 0:
        return False
    os.chown(path, user.pw_uid, user.pw_gid)
    return True


def write_broker_files(ca: TenantCA, folder: Path, *, names: list[str], addresses: list[str], port: int = 8883,
                       days: int = CERT_DAYS) -> BrokerFiles:
    """Issue the broker's certificate and write it, its key, an ACL placeholder (kept if present) and the
    Mosquitto configuration into `folder`. Raises CAError for a name or address that cannot be used."""
    cert, key = ca.issue_broker(names, addresses, days=days)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca.folder.chmod(0o711)  # a CA made before this was 0700: the broker could not open ca.pem and crl.pem
    names_ = ("server.pem", "server.key", "acl", "mosquitto.conf")
    cert_file, key_file, acl_file, conf_file = (folder / n for n in names_)
    write_atomically(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write_atomically(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()), 0o600)
    owned = _hand_to_broker(key_file)
    if not acl_file.exists():
        # An empty ACL lets nobody publish: safe until the registry's is written over it.
        write_atomically(acl_file, b"# No gateways yet: dho-central gateways acl --db URL > this file\n", 0o644)
    write_atomically(conf_file, _conf(ca, folder, port).encode(), 0o644)
    return BrokerFiles(conf_file, cert_file, key_file, acl_file, owned, f"{cert.not_valid_after_utc:%Y-%m-%d}")
