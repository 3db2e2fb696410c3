"""`dho-gateway kit check`, the hand-over check: a real Mosquitto that trusts the tenant CA and reads its
CRL, the tenant CA from `central.ca`, and simulated devices heard through bleak's API."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from gateway.ble import BleBackends
from gateway.kit import config_file
from gateway.kit.check import check_web, render, run_checks
from gateway.settings import Settings, load_settings
from gateway.storage import SealedOutbox, load_or_create_key
from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.gatt_devices import BloodPressureCuff, PulseOximeter
from hardware_sims.radio import VirtualRadio
from tests.conftest import Mosquitto
from tests.kit_support import Office, gateway, provisioned_kit


def with_devices(config: Path, *devices: dict[str, Any]) -> Settings:
    data = config_file.read(config)
    data["devices"] = list(devices)
    # The service (and with it the pages) does not run in these tests; the pages' line has a test of its own.
    data["web"] = {"enabled": False}
    config_file.write(config, data)
    return load_settings(config)


def lines(checks: list[Any]) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in checks}


async def test_a_ready_kit_passes_every_line_and_a_tired_device_fails_its_own(
    tmp_path: Path, office: Office, broker: Mosquitto
) -> None:
    config = provisioned_kit(tmp_path / "kit", office, broker.port)
    radio = VirtualRadio()
    cuff = BloodPressureCuff(radio)
    oximeter = PulseOximeter(radio, battery=12, clock_offset=timedelta(hours=2))
    for device in (cuff, oximeter):
        await device.power_on()
        await device.advertise()
    backends = BleBackends(BumbleScanner, BumbleClient, {"radio": radio})

    settings = with_devices(config, {"address": cuff.address, "kind": "blood_pressure"})
    central = office.central(broker.port, tmp_path / "central.sqlite3")
    g = settings.gateway
    central.provision(g.id, tenant=g.tenant, patient=g.patient)
    serving = asyncio.create_task(central.run())
    try:
        await central.ready.wait()
        checks = await run_checks(settings, backends=backends, scan_s=0.5)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        central.close()
    assert all(c.ok for c in checks), render(checks)
    found = lines(checks)
    assert set(found) == {"certificate", "broker", "central", "KEK", "outbox", "disk", "plan",
                          f"device blood_pressure {cuff.address}"}
    assert found["central"][1].startswith("the central service stored a probe and acknowledged it in ")
    assert found["broker"] == (True, f"127.0.0.1:{broker.port} over mutual TLS")
    assert found["certificate"][1].startswith("valid 36") and found["plan"] == (True, "profile standard-copd")
    # The device's clock is right: read across a second boundary it may show one second off, no more.
    ok, detail = found[f"device blood_pressure {cuff.address}"]
    assert ok and re.fullmatch(r"battery 90 %, clock [+-][01] s", detail), detail
    assert render(checks).endswith("8 passed, 0 failed: ready to hand over")
    assert cuff.time_writes == []  # the check reads; it never sets anything on a device

    settings = with_devices(config, {"address": cuff.address, "kind": "blood_pressure"},
                            {"address": oximeter.address, "kind": "spo2"},
                            {"address": "F0:5E:1A:00:00:09", "kind": "body_weight"})
    found = lines(await run_checks(settings, backends=backends, scan_s=0.5, central_timeout_s=0.5))
    assert found["central"] == (False, "no answer from the central service within 0 s: is `dho-central ingest` "
                                "running on this broker, and the kit registered (dho-central gateways register)?")
    ok, detail = found[f"device spo2 {oximeter.address}"]
    # The device keeps whole seconds: two hours ahead reads as 7199 or 7200 s.
    assert not ok and re.fullmatch(r"battery 12 % \(under 20 %\): change the batteries; clock \+7(199|200) s off: "
                                   r"it is set at its next session", detail), detail
    assert found["device body_weight F0:5E:1A:00:00:09"] == (
        False, "not seen in 0 s: wake it (take a measurement) and check its batteries")


async def test_an_expired_or_revoked_certificate_fails_the_check_with_the_reason(
    tmp_path: Path, office: Office
) -> None:
    expired = provisioned_kit(tmp_path / "old", office, 1, days=0, gateway_id="gw-expired")
    revoked = provisioned_kit(tmp_path / "lost", office, 1, gateway_id="gw-lost")
    office.ca.revoke("gw-lost", "kit lost")
    broker = office.broker()
    broker.start()  # reads the CRL with gw-lost on it
    try:
        for config in (expired, revoked):
            data = config_file.read(config)
            data["mqtt"]["port"] = broker.port
            config_file.write(config, data)
        old = lines(await run_checks(load_settings(expired), scan_s=0.1))
        lost = lines(await run_checks(load_settings(revoked), scan_s=0.1))
    finally:
        broker.stop()
    assert old["certificate"][0] is False and old["certificate"][1].startswith("expired on ")
    assert old["broker"] == (False, f"127.0.0.1:{broker.port}: TLS refused: certificate expired")
    assert lost["certificate"][0] is True  # the certificate itself looks fine on the box ...
    # ... but not to the broker
    assert lost["broker"] == (False, f"127.0.0.1:{broker.port}: TLS refused: certificate revoked")


def test_the_command_exits_non_zero_on_a_failure_and_speaks_json(tmp_path: Path, office: Office) -> None:
    config = provisioned_kit(tmp_path / "kit", office, 1)  # nobody listens on port 1
    settings = load_settings(config)
    outbox = SealedOutbox(settings.gateway.outbox_path, load_or_create_key(settings.gateway.key_path))
    outbox.put("r-1", b"a reading not yet acknowledged")
    outbox.close()
    result = gateway("kit", "check", "--config", str(config), "--json", "--scan-seconds", "0.1")
    assert result.returncode == 1
    found = {c["name"]: c for c in json.loads(result.stdout)}
    assert found["broker"]["ok"] is False and "not reachable" in found["broker"]["detail"]
    assert found["outbox"] == {"name": "outbox", "ok": False, "detail": "1 reading(s) not yet acknowledged, 0 "
                               "quarantined: connect the kit until the central has them, or they go with a wipe"}
    assert found["devices"] == {"name": "devices", "ok": False,
                                "detail": "no device provisioned: `dho-gateway kit pair`"}
    assert found["KEK"]["ok"] is True and found["certificate"]["ok"] is True
    # The pages are on by default and the service is not running here: that is a failure too.
    assert found["local pages"]["ok"] is False and "is the service running?" in found["local pages"]["detail"]
    table = gateway("kit", "check", "--config", str(config), "--scan-seconds", "0.1")
    assert table.returncode == 1 and table.stdout.splitlines()[-1] == "4 passed, 5 failed"
    assert "FAIL  central      not tried: the broker does not accept this kit" in table.stdout
    assert "FAIL  broker" in table.stdout


def test_the_local_pages_are_checked_when_the_configuration_has_them(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        up = check_web(cast(Settings, SimpleNamespace(web=SimpleNamespace(enabled=True, host="127.0.0.1", port=port))))
        assert up is not None and up.ok and up.detail == f"http://127.0.0.1:{port}/ answers 200"
    finally:
        server.shutdown()
        server.server_close()
    down = check_web(cast(Settings, SimpleNamespace(web=SimpleNamespace(enabled=True, host="127.0.0.1", port=port))))
    assert down is not None and not down.ok and "does not answer" in down.detail
    assert check_web(cast(Settings, SimpleNamespace(web=SimpleNamespace(enabled=False)))) is None  # no pages: no line


async def test_a_kit_the_central_does_not_know_fails_the_hand_over_with_the_reason(
    tmp_path: Path, office: Office, broker: Mosquitto
) -> None:
    """Issue 19: `kit check` passed at hand-over (the outbox was still empty) while the central refused every
    batch of the kit as an unknown gateway."""
    config = provisioned_kit(tmp_path / "kit", office, broker.port)
    central = office.central(broker.port, tmp_path / "central.sqlite3")  # the kit is not registered
    serving = asyncio.create_task(central.run())
    try:
        await central.ready.wait()
        result = await asyncio.to_thread(gateway, "kit", "check", "--config", str(config), "--scan-seconds", "0.1")
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        central.close()
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL  central"))
    assert "refused (unknown_gateway: unknown gateway 'gw-kit-1'" in line, result.stdout
    assert "the central service does not know this gateway: register it (dho-central gateways register" in line
    assert "p-first" not in result.stdout
