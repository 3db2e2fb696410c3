"""`kit reissue`: a returned kit goes to the next patient with nothing of the first one readable, and a
power cut half way is finished by running it again, never leaving old data under a new id."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus

from gateway.ble import BleBackends
from gateway.kit import config_file, reissue
from gateway.kit.check import run_checks
from gateway.kit.radio import BondError, read_device_facts, remove_bond_bluez
from gateway.kit.reissue import journal_path
from gateway.settings import load_settings
from gateway.storage import KeyFileError, SealedOutbox, StoreError, load_or_create_key
from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.gatt_devices import BloodPressureCuff
from hardware_sims.radio import VirtualRadio, random_static
from tests.conftest import Mosquitto
from tests.kit_fake_bluez import FakeAdapter
from tests.kit_support import Office, gateway, provisioned_kit

READING = b'{"patient": "p-first", "type": "spo2", "components": {"spo2": {"value": 86.0}}}'


def used_kit(tmp_path: Path, office: Office, port: int) -> tuple[Path, bytes]:
    """A kit back from patient p-first: readings in its outbox (two unacknowledged), a cuff paired,
    a plan file kept in data_dir, and an earlier configuration backup naming the patient."""
    config = provisioned_kit(tmp_path / "kit", office, port)
    data = config_file.read(config)
    data["devices"] = [{"address": "F0:5E:1A:00:00:21", "kind": "blood_pressure", "serial": "5150021",
                        "profile": "and-ua-651ble"}]
    config_file.write(config, data)  # leaves a backup naming p-first
    g = load_settings(config).gateway
    kek = load_or_create_key(g.key_path)
    outbox = SealedOutbox(g.outbox_path, kek)
    for i in range(2):
        outbox.put(f"r-{i}", READING)
    outbox.close()
    (g.data_dir / "plans").mkdir()
    (g.data_dir / "plans" / "in-force.json").write_text('{"patient": "p-first"}')
    return config, kek


def every_file(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()}


async def bond(radio: VirtualRadio, backends: BleBackends) -> BloodPressureCuff:
    cuff = BloodPressureCuff(radio, and_style=True, address="F0:5E:1A:00:00:21", name="A&D_UA-651BLE_0021",
                             serial="5150021", requires_bond=True)
    await cuff.power_on()
    await cuff.advertise()
    await read_device_facts(cuff.address, "blood_pressure", "and-ua-651ble", backends, "Europe/Oslo",
                            set_clock=False, pair=True)
    return cuff


async def bonded(radio: VirtualRadio, address: str) -> bool:
    adapter = await radio.adapter()
    assert adapter.keystore is not None
    return await adapter.keystore.get(str(random_static(address))) is not None


async def test_nothing_of_the_previous_patient_can_be_read_after_a_reissue_and_the_kit_checks_out(
    tmp_path: Path, office: Office, broker: Mosquitto
) -> None:
    config, old_kek = used_kit(tmp_path, office, broker.port)
    g = load_settings(config).gateway
    image = tmp_path / "card-image.sqlite3"  # what someone copying the card before the wipe would hold
    shutil.copy(g.outbox_path, image)
    radio = VirtualRadio()
    backends = BleBackends(BumbleScanner, BumbleClient, {"radio": radio})
    await bond(radio, backends)
    assert await bonded(radio, "F0:5E:1A:00:00:21")

    said: list[str] = []
    done = await reissue.reissue(config, patient="p-second", backends=backends, with_key="host", out=said.append)
    assert (done.old_patient, done.new_patient, done.resumed) == ("p-first", "p-second", False)
    assert done.bonds_removed == ["F0:5E:1A:00:00:21"] and not await bonded(radio, "F0:5E:1A:00:00:21")

    settings = load_settings(config)
    assert settings.gateway.patient == "p-second" and settings.devices == []
    assert not journal_path(config).exists()
    # Nothing on the kit names the old patient or holds the old key; the old key is gone.
    for path, content in every_file(config.parent, g.data_dir).items():
        assert b"p-first" not in content, path
        assert old_kek not in content, path
    new_kek = g.key_path.read_bytes()
    assert new_kek != old_kek
    # The card image cannot be opened with what the kit now holds.
    with pytest.raises((StoreError, KeyFileError, ValueError)):
        SealedOutbox(image, new_kek).pending(0, 10)

    checks = {c.name: c for c in await run_checks(settings, scan_s=0.1)}
    for name in ("certificate", "broker", "KEK", "outbox", "disk", "plan"):
        assert checks[name].ok, (name, checks[name].detail)
    assert not checks["devices"].ok and "kit pair" in checks["devices"].detail  # pair for the new patient next


async def test_a_power_cut_half_way_is_finished_by_running_reissue_again(
    tmp_path: Path, office: Office, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, old_kek = used_kit(tmp_path, office, 1)
    g = load_settings(config).gateway

    async def power_cut(_address: str, _backends: BleBackends | None) -> None:
        raise OSError("power cut")

    with pytest.raises(OSError, match="power cut"):
        await reissue.reissue(config, backends=None, unpair=power_cut, out=lambda _l: None)
    journal = json.loads(journal_path(config).read_text())
    new_patient = journal["new_patient"]
    assert journal["done"] == ["wipe"]
    # Half way: the old patient's data is already gone, and the new id is not yet written.
    assert not g.outbox_path.exists() and not g.key_path.exists()
    assert load_settings(config).gateway.patient == "p-first"

    # Cut again, in the last step this time.
    removed: list[str] = []

    async def unpair(address: str, _backends: BleBackends | None) -> None:
        removed.append(address)

    def no_power(*_args: object) -> bool:
        raise OSError("power cut")

    monkeypatch.setattr(reissue, "create_kek", no_power)
    with pytest.raises(OSError, match="power cut"):
        await reissue.reissue(config, unpair=unpair, out=lambda _l: None)
    assert json.loads(journal_path(config).read_text())["done"] == ["wipe", "bonds", "identity"]
    assert load_settings(config).gateway.patient == new_patient and removed == ["F0:5E:1A:00:00:21"]
    monkeypatch.undo()

    said: list[str] = []
    done = await reissue.reissue(config, unpair=unpair, out=said.append)
    assert done.resumed and done.new_patient == new_patient
    assert said[0].startswith("resuming the reissue begun") and said[0].endswith("(done: wipe, bonds, identity)")
    assert not journal_path(config).exists() and len(g.key_path.read_bytes()) == 32
    assert g.key_path.read_bytes() != old_kek


def test_the_command_says_what_it_would_destroy_and_refuses_a_config_inside_data_dir(
    tmp_path: Path, office: Office
) -> None:
    config, _ = used_kit(tmp_path, office, 1)
    before = every_file(config.parent)
    dry = gateway("kit", "reissue", "--config", str(config))
    assert dry.returncode == 0 and dry.stdout.startswith("would crypto-erase")
    assert "patient p-first's readings" in dry.stdout and every_file(config.parent) == before

    # The service still running: refused before anything changes.
    with pytest.raises(reissue.ReissueError, match="the gateway service is running: `systemctl stop dho-gateway`"):
        asyncio.run(reissue.reissue(config, running=lambda: True, out=lambda _l: None))
    assert every_file(config.parent) == before and not journal_path(config).exists()

    inside = load_settings(config).gateway.data_dir / "gateway.toml"
    shutil.copy(config, inside)
    refused = gateway("kit", "reissue", "--config", str(inside), "--yes")
    assert refused.returncode == 2 and "inside data_dir" in refused.stderr
    assert load_settings(config).gateway.outbox_path.exists()



async def test_bonds_are_removed_through_bluez_over_d_bus_and_a_missing_bluez_stops_the_reissue_until_rerun(
    tmp_path: Path, office: Office, bus_address: str
) -> None:
    config, _ = used_kit(tmp_path, office, 1)

    async def unpair(address: str, _backends: BleBackends | None) -> None:
        await remove_bond_bluez(address, bus_address=bus_address)

    # BlueZ is not running yet: the reissue stops after the wipe, with the reason, and can be re-run.
    with pytest.raises(BondError, match="BlueZ is not running: cannot remove the bond of F0:5E:1A:00:00:21"):
        await reissue.reissue(config, unpair=unpair, out=lambda _l: None)
    assert journal_path(config).exists()

    bluez = await MessageBus(bus_address=bus_address).connect()
    adapter = FakeAdapter(["/org/bluez/hci0/dev_F0_5E_1A_00_00_21", "/org/bluez/hci0/dev_F0_AA_BB_CC_DD_01"])
    bluez.export("/org/bluez/hci0", adapter)
    await bluez.request_name("org.bluez")
    try:
        done = await reissue.reissue(config, unpair=unpair, out=lambda _l: None)
        # Gone again (already removed): not an error.
        assert await remove_bond_bluez("F0:5E:1A:00:00:21", bus_address=bus_address) is False
    finally:
        bluez.disconnect()
    assert done.resumed and done.bonds_removed == ["F0:5E:1A:00:00:21"]
    assert adapter.removed == ["/org/bluez/hci0/dev_F0_5E_1A_00_00_21"]
    assert adapter.bonded == ["/org/bluez/hci0/dev_F0_AA_BB_CC_DD_01"]  # another household's bond is untouched


def simulated_home(config: Path) -> None:
    data = config_file.read(config)
    data["device_source"] = "simulated-home"
    config_file.write(config, data)


def test_a_simulated_home_kit_is_reissued_without_bluez_and_a_power_cut_is_finished_by_running_it_again(
    tmp_path: Path, office: Office, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19.6: with the simulated source the reissue stopped after the wipe (no BlueZ to remove bonds
    from), and `kit check` then said "KEK missing ... nothing was deleted". The bonds step now succeeds,
    saying there are none, and the check names the unfinished reissue."""
    config, old_kek = used_kit(tmp_path, office, 1)
    simulated_home(config)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-system-bus'}")  # no D-Bus, no BlueZ

    def no_power(*_args: object) -> bool:
        raise OSError("power cut")

    monkeypatch.setattr(reissue, "create_kek", no_power)  # the power goes in the last step
    cut = gateway("kit", "reissue", "--config", str(config), "--yes", "--patient", "p-second")
    assert cut.returncode != 0 and "power cut" in cut.stderr, cut
    assert "bonds: device_source = simulated-home keeps no BlueZ bonds: none to remove" in cut.stdout
    assert json.loads(journal_path(config).read_text())["done"] == ["wipe", "bonds", "identity"]
    monkeypatch.undo()

    # Mid-reissue the hand-over check says one thing: finish the reissue.
    check = gateway("kit", "check", "--config", str(config), "--scan-seconds", "0.1")
    assert check.returncode == 1
    assert [line for line in check.stdout.splitlines() if line.startswith("FAIL")] == [
        "FAIL  kit  reissue unfinished: run `dho-gateway kit reissue` again"]
    assert "KEK" not in check.stdout
    as_json = json.loads(gateway("kit", "check", "--config", str(config), "--json").stdout)
    assert as_json == [{"name": "kit", "ok": False,
                        "detail": "reissue unfinished: run `dho-gateway kit reissue` again"}]

    again = gateway("kit", "reissue", "--config", str(config), "--yes")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("resuming the reissue begun") and "(done: wipe, bonds, identity)" in again.stdout
    assert not journal_path(config).exists()
    settings = load_settings(config)
    assert settings.gateway.patient == "p-second" and settings.devices == []
    assert settings.gateway.key_path.read_bytes() != old_kek


def test_a_simulated_home_kit_is_reissued_in_one_run(tmp_path: Path, office: Office,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = used_kit(tmp_path, office, 1)
    simulated_home(config)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-system-bus'}")
    done = gateway("kit", "reissue", "--config", str(config), "--yes", "--patient", "p-second")
    assert done.returncode == 0, done.stderr
    assert ("bonds: device_source = simulated-home keeps no BlueZ bonds: none to remove; 1 device(s) taken out of "
            "the configuration: pair them again for the new patient") in done.stdout
    assert not journal_path(config).exists() and load_settings(config).devices == []
    assert load_settings(config).gateway.patient == "p-second"


async def test_kit_check_during_an_unfinished_reissue_says_one_thing_finish_the_reissue(
    tmp_path: Path, office: Office
) -> None:
    """Issue 19.6: half way through a reissue the KEK is gone by design, and `kit check` said "KEK missing
    ... nothing was deleted", sending the technician to restore a key. It says to finish the reissue."""
    config, _ = used_kit(tmp_path, office, 1)

    async def power_cut(_address: str, _backends: BleBackends | None) -> None:
        raise OSError("power cut")

    with pytest.raises(OSError, match="power cut"):
        await reissue.reissue(config, unpair=power_cut, out=lambda _l: None)
    check = await asyncio.to_thread(gateway, "kit", "check", "--config", str(config), "--scan-seconds", "0.1")
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == "FAIL  kit  reissue unfinished: run `dho-gateway kit reissue` again"
    assert [line for line in check.stdout.splitlines() if line.startswith("FAIL")] == [check.stdout.splitlines()[0]]
    assert "KEK" not in check.stdout and "nothing was deleted" not in check.stdout
