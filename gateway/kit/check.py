"""`kit check`: the hand-over check, one pass/fail line per thing a technician can act on.

Each check is a small function returning `Check`s; nothing here changes the kit (the device check
connects, reads battery and clock, and disconnects; it writes nothing to the device).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.ble import BleBackends
from gateway.kit.radio import DeviceFacts, read_device_facts, scan
from gateway.kit.reissue import journal_path
from gateway.plans import check_provisioned_trust, load_profile
from gateway.settings import ConfigError, Settings
from gateway.storage import (
    KeyFileError,
    OutboxUnavailable,
    SealedOutbox,
    StoreError,
    SystemdCredential,
    key_source_for,
)
from gateway.uplink import refusal_fault
from protocol import Ack, Event, Topics, make_client


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def kek_for_tools(settings: Settings) -> bytes:
    """The outbox KEK outside the service: the key file, or the credential decrypted by systemd-creds
    (root only: the host key or the TPM decrypts it, as the unit's LoadCredentialEncrypted= does)."""
    g = settings.gateway
    source = key_source_for(g)
    if isinstance(source, SystemdCredential) and source.directory is None:
        if not g.key_credential_store.exists():
            raise KeyFileError(f"no systemd credential {g.key_credential_store}")
        tool = shutil.which("systemd-creds")
        if tool is None:
            raise KeyFileError("systemd-creds is not installed: the credential cannot be checked")
        result = subprocess.run([tool, "decrypt", f"--name={g.key_credential}",  # noqa: S603  (our own arguments)
                                 str(g.key_credential_store), "-"], capture_output=True, timeout=60, check=False)
        if result.returncode != 0:
            raise KeyFileError(f"systemd-creds cannot decrypt {g.key_credential_store}: "
                               f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout
    return source.load(create=False)


def check_certificate(settings: Settings, min_days: int, now: dt.datetime | None = None) -> Check:
    m = settings.mqtt
    if m.insecure_dev:
        return Check("certificate", False, "insecure_dev = true: no TLS at all; never hand over such a kit")
    path = Path(str(m.cert_file))
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return Check("certificate", False, f"{path} is missing: have the CSR signed (dho-central ca sign) and run "
                     "`dho-gateway kit install-cert`")
    except (OSError, ValueError) as exc:
        return Check("certificate", False, f"{path}: not a certificate ({exc})")
    now = now or dt.datetime.now(dt.UTC)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != settings.gateway.id:
        return Check("certificate", False, f"{path} names {names[0].value if names else None!r}, not this kit "
                     f"({settings.gateway.id})")
    left = cert.not_valid_after_utc - now
    if left <= dt.timedelta(0):
        return Check("certificate", False, f"expired on {cert.not_valid_after_utc:%Y-%m-%d}: renew it "
                     "(dho-central ca renew) before hand-over")
    if left < dt.timedelta(days=min_days):
        return Check("certificate", False, f"valid only {left.days} more day(s) (until "
                     f"{cert.not_valid_after_utc:%Y-%m-%d}; at least {min_days} needed): renew it")
    return Check("certificate", True, f"valid {left.days} more day(s), CN {settings.gateway.id}")


def _tls_verdict(settings: Settings, timeout_s: float) -> str:
    """'' when the broker accepts this kit's certificate, else its reason (refused, revoked, expired...)."""
    m = settings.mqtt
    context = m.tls_context()
    assert context is not None
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=m.host) as tls:
            tls.settimeout(min(timeout_s, 1.0))
            with contextlib.suppress(TimeoutError):
                tls.recv(1)  # in TLS 1.3 the broker's verdict on our certificate arrives after the handshake
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        return f"TLS refused: {reason.replace('SSLV3_ALERT_', '').replace('_', ' ').lower()}"
    except OSError as exc:
        return f"not reachable: {exc.strerror or exc}"
    return ""


def _missing(*files: Path | None) -> list[str]:
    return [str(f) for f in files if f is not None and not Path(f).exists()]


async def check_broker(settings: Settings, timeout_s: float = 10.0) -> Check:
    m = settings.mqtt
    where = f"{m.host}:{m.port}"
    if m.insecure_dev:
        return Check("broker", False, f"{where}: insecure_dev = true (plain TCP)")
    try:
        verdict = await asyncio.to_thread(_tls_verdict, settings, timeout_s)
    except (OSError, ssl.SSLError) as exc:
        missing = _missing(m.ca_file, m.cert_file, m.key_file)
        reason = f"missing {', '.join(missing)}" if missing else str(exc)
        return Check("broker", False, f"{where}: the TLS files cannot be loaded ({reason})")
    if verdict:
        return Check("broker", False, f"{where}: {verdict}")
    try:
        async with asyncio.timeout(timeout_s), make_client(m, f"{settings.gateway.id}-check") as client:
            await client.publish(f"check/{settings.gateway.id}", b"", qos=0)
    except (aiomqtt.MqttError, TimeoutError) as exc:
        return Check("broker", False, f"{where}: TLS accepted but MQTT refused: {exc or 'timeout'}")
    return Check("broker", True, f"{where} over mutual TLS")


async def check_central(settings: Settings, timeout_s: float = 15.0) -> Check:
    """A probe event through the broker to the central service: PASS only when the central acknowledges it
    (it stored it), FAIL with the central's reason when it refuses it, or when no answer comes in time."""
    g, m = settings.gateway, settings.mqtt
    topics = Topics(g.tenant, g.id)
    probe = Event(gateway=g.id, id=uuid.uuid4(), kind="kit_check", at=dt.datetime.now(dt.UTC),
                  detail={"probe": "hand-over"})
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s), make_client(m, f"{g.id}-check") as client:
            await client.subscribe(topics.ack, qos=1)
            await client.publish(topics.events, probe.model_dump_json(), qos=1)
            async for message in client.messages:
                try:
                    ack = Ack.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
                except ValueError:
                    continue
                if probe.id in ack.ids:
                    return Check("central", True, f"the central service stored a probe and acknowledged it in "
                                 f"{time.monotonic() - started:.1f} s")
                for refusal in ack.refused:
                    if probe.id in refusal.ids:
                        return Check("central", False, f"refused ({refusal.code}: {refusal.detail}): "
                                     f"{refusal_fault(refusal.code, refusal.detail)}")
    except TimeoutError:
        pass
    except aiomqtt.MqttError as exc:
        return Check("central", False, f"the probe could not be sent: {exc}")
    return Check("central", False, f"no answer from the central service within {timeout_s:.0f} s: is `dho-central "
                 "ingest` running on this broker, and the kit registered (dho-central gateways register)?")


def check_kek(settings: Settings) -> tuple[Check, bytes | None]:
    g = settings.gateway
    try:
        kek = kek_for_tools(settings)
    except (KeyFileError, OSError, subprocess.SubprocessError) as exc:
        return Check("KEK", False, str(exc)), None
    where = g.key_credential_store if g.key_source == "systemd-credential" else g.key_path
    return Check("KEK", True, f"{g.key_source} {where}"), kek


def check_outbox(settings: Settings, kek: bytes | None) -> Check:
    path = settings.gateway.outbox_path
    if not path.exists():
        return Check("outbox", True, "empty (not created yet)")
    if kek is None:
        return Check("outbox", False, f"{path} exists but no KEK can open it")
    try:
        outbox = SealedOutbox(path, kek)
    except StoreError as exc:  # too damaged to open (names `outbox salvage`), or another file's key
        return Check("outbox", False, str(exc))
    try:
        depth, quarantined, damage = outbox.depth(), outbox.quarantined(), outbox.check()
    except OutboxUnavailable as exc:
        return Check("outbox", False, str(exc))
    finally:
        outbox.close()
    if damage:  # issue 19.4: every damaged record or page, each naming `dho-gateway outbox salvage`
        return Check("outbox", False, "; ".join(damage))
    if depth or quarantined:
        return Check("outbox", False, f"{depth} reading(s) not yet acknowledged, {quarantined} quarantined: connect "
                     "the kit until the central has them, or they go with a wipe")
    return Check("outbox", True, "empty")


def check_disk(settings: Settings) -> Check:
    folder = settings.gateway.data_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    need = settings.outbox.max_bytes
    text = f"{free // 2**20} MiB free in {folder}"
    if free < need:
        return Check("disk", False, f"{text}; the outbox may grow to {need // 2**20} MiB")
    return Check("disk", True, text)


def check_plan(settings: Settings) -> Check:
    try:
        profile = load_profile(settings.zoning.profile)
    except (ConfigError, OSError, ValueError) as exc:
        return Check("plan", False, str(exc))
    try:  # what `run` refuses to start on (a trust store without its root key, a foreign or altered store)
        store = check_provisioned_trust(settings.plans, settings.gateway.tenant)
    except ConfigError as exc:
        return Check("plan", False, f"{exc}: the service will not start")
    return Check("plan", True, f"profile {profile.id}" + (
        f", trust store v{store.version} ({settings.plans.trust_store})" if store else ""))


def check_web(settings: Settings, timeout_s: float = 5.0) -> Check | None:
    """The local pages, when the configuration enables them (`[web] enabled`, the default)."""
    web = settings.web
    if not web.enabled:
        return None
    host = "127.0.0.1" if web.host in ("0.0.0.0", "::") else web.host  # noqa: S104  (reaching it, not binding)
    url = f"http://{host}:{web.port}/"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            status = answer.status
    except OSError as exc:
        return Check("local pages", False, f"{url} does not answer ({exc}): is the service running?")
    return Check("local pages", status < 400, f"{url} answers {status}")


async def check_devices(settings: Settings, backends: BleBackends | None, *, scan_s: float,
                        battery_min: int, read: Callable[..., Awaitable[DeviceFacts]] = read_device_facts,
                        ) -> list[Check]:
    if not settings.devices:
        return [Check("devices", False, "no device provisioned: `dho-gateway kit pair`")]
    if settings.device_source != "bluez":
        return [Check("devices", True, f"device_source = {settings.device_source}: no radio check")]
    try:
        seen = {n.address: n for n in await scan(backends, scan_s)}
    except Exception as exc:  # no adapter, BlueZ not running: one line, the other checks still count
        return [Check("devices", False, f"cannot scan: {exc or type(exc).__name__}: is Bluetooth on (bluetoothctl "
                      "show)?")]
    results = []
    tolerance = settings.gateway.clock_tolerance_s
    for device in settings.devices:
        name = f"device {device.kind.value} {device.address}"
        if device.address not in seen:
            results.append(Check(name, False, f"not seen in {scan_s:.0f} s: wake it (take a measurement) and "
                                 "check its batteries"))
            continue
        if seen[device.address].advertised_only:
            results.append(Check(name, True, f"seen, {seen[device.address].rssi} dBm (advertises its values)"))
            continue
        try:
            facts = await read(device.address, device.kind.value, device.profile, backends, settings.gateway.timezone,
                               set_clock=False)
        except Exception as exc:  # any radio failure is this device's line, never the end of the check
            results.append(Check(name, False, f"seen but could not be read: {exc}"))
            continue
        problems = []
        if facts.battery is not None and facts.battery < battery_min:
            problems.append(f"battery {facts.battery} % (under {battery_min} %): change the batteries")
        if facts.clock_offset_s is not None and abs(facts.clock_offset_s) > tolerance:
            problems.append(f"clock {facts.clock_offset_s:+.0f} s off: it is set at its next session")
        detail = (f"battery {facts.battery if facts.battery is not None else '?'} %, clock "
                  f"{'?' if facts.clock_offset_s is None else f'{facts.clock_offset_s:+.0f} s'}")
        results.append(Check(name, not problems, "; ".join(problems) or detail))
    return results


def unfinished_reissue(config: Path) -> Check | None:
    """The one line while a reissue is half done (its journal beside `config`): the other lines would only
    describe the half-way state (the KEK and the outbox gone by design), and send the technician the wrong way."""
    if not journal_path(config).exists():
        return None
    return Check("kit", False, "reissue unfinished: run `dho-gateway kit reissue` again")


async def run_checks(settings: Settings, *, backends: BleBackends | None = None, min_days: int = 30,
                     scan_s: float = 10.0, battery_min: int = 20, broker_timeout_s: float = 10.0,
                     central_timeout_s: float = 15.0) -> list[Check]:
    checks = [check_certificate(settings, min_days), await check_broker(settings, broker_timeout_s)]
    if checks[-1].ok:  # a readings' path to a person: through the broker to the central's store
        checks.append(await check_central(settings, central_timeout_s))
    else:
        checks.append(Check("central", False, "not tried: the broker does not accept this kit"))
    kek_check, kek = check_kek(settings)
    checks += [kek_check, await asyncio.to_thread(check_outbox, settings, kek), check_disk(settings),
               check_plan(settings)]
    checks += await check_devices(settings, backends, scan_s=scan_s, battery_min=battery_min)
    web = await asyncio.to_thread(check_web, settings)
    if web is not None:
        checks.append(web)
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}" for c in checks]
    failed = sum(not c.ok for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed" + ("" if failed else ": ready to hand over"))
    return "\n".join(lines)


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
