"""`kit pair` against simulated devices: bleak's API on the bumble backend for the radio, and the
gateway's pairing agent registered over a real dbus-daemon with the fake BlueZ, which asks it for the
passkey as BlueZ does while pairing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection
from bumble.pairing import PairingConfig, PairingDelegate
from dbus_fast import DBusError
from dbus_fast.aio import MessageBus

from gateway.ble import BleBackends, PairingAgent, PairingPolicy, register_agent
from gateway.kit.pair import PairError, PairRequest, health_table, pair_devices, refusals
from gateway.kit.radio import Nearby, classify
from gateway.settings import load_settings
from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.gatt_devices import BloodPressureCuff, Scale
from hardware_sims.radio import VirtualRadio, random_static
from tests.fake_bluez import FakeBlueZ
from tests.kit_support import Office, provisioning

PASSKEY = 123456
CUFF = "F0:5E:1A:00:00:11"
SPEAKER = "F0:5E:1A:00:00:99"



class AsksTheAgent(PairingDelegate):
    """BlueZ's part while pairing: it asks the registered agent, over D-Bus, for the passkey the device
    displays (or to authorise a Just Works pairing); the agent's refusal fails the pairing."""

    def __init__(self, agent: Any, address: str) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY)
        self.agent, self.path = agent, f"/org/bluez/hci0/dev_{address.replace(':', '_')}"

    async def get_number(self) -> int | None:
        try:
            number: int = await self.agent.call_request_passkey(self.path)
            return number
        except DBusError:
            return None

    async def confirm(self, auto: bool = False) -> bool:
        try:
            await self.agent.call_request_authorization(self.path)
            return True
        except DBusError:
            return False


class ShowsPasskey(PairingDelegate):
    """The cuff's side: it shows a passkey (on its display, or printed on it) the technician types in."""

    def __init__(self) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)

    async def generate_passkey(self) -> int:
        return PASSKEY


@dataclass
class FakeBlueZHost:
    """The gateway's D-Bus side (pairing agent) and a fake BlueZ on one real bus, bridged to the radio."""

    bus_address: str
    radio: VirtualRadio
    agents: list[PairingAgent] = field(default_factory=list)
    buses: list[MessageBus] = field(default_factory=list)
    bluez: FakeBlueZ = field(default_factory=FakeBlueZ)

    async def platform(self, passkeys: dict[str, int | None]) -> None:
        """What connect_bluez does on the box: register the agent for the chosen devices with BlueZ."""
        bluez_bus = await MessageBus(bus_address=self.bus_address).connect()
        bluez_bus.export("/org/bluez", self.bluez)
        await bluez_bus.request_name("org.bluez")
        gateway_bus = await MessageBus(bus_address=self.bus_address).connect()
        self.buses += [bluez_bus, gateway_bus]
        root = gateway_bus.get_proxy_object("org.bluez", "/org/bluez",
                                            await gateway_bus.introspect("org.bluez", "/org/bluez"))
        agent = PairingAgent(PairingPolicy(passkeys))
        await register_agent(gateway_bus, root.get_interface("org.bluez.AgentManager1"), agent)  # type: ignore[arg-type]
        self.agents.append(agent)
        assert gateway_bus.unique_name is not None
        path = self.bluez.registered[-1][0]
        proxy = bluez_bus.get_proxy_object(gateway_bus.unique_name, path,
                                           await bluez_bus.introspect(gateway_bus.unique_name, path))
        asked = proxy.get_interface("org.bluez.Agent1")
        adapter = await self.radio.adapter()

        def config_for(connection: Connection) -> PairingConfig:
            address = connection.peer_address.to_string(False)
            return PairingConfig(sc=True, mitm=True, bonding=True, delegate=AsksTheAgent(asked, address))

        adapter.pairing_config_factory = config_for

    async def bonded(self, address: str) -> bool:
        adapter = await self.radio.adapter()
        assert adapter.keystore is not None
        return await adapter.keystore.get(str(random_static(address))) is not None

    def close(self) -> None:
        for bus in self.buses:
            bus.disconnect()


@pytest.fixture
async def host(bus_address: str) -> AsyncIterator[FakeBlueZHost]:
    h = FakeBlueZHost(bus_address, VirtualRadio())
    yield h
    h.close()


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    from gateway.kit.provision import provision

    return provision(provisioning(tmp_path, Office.create(tmp_path / "office"), 8883)).config


async def a_d_cuff(radio: VirtualRadio, serial: str = "5150042", *, shows_passkey: bool = True) -> BloodPressureCuff:
    cuff = BloodPressureCuff(radio, and_style=True, address=CUFF, name="A&D_UA-651BLE_0042", model="UA-651BLE",
                             serial=serial, requires_bond=True, battery=77)
    if shows_passkey:
        cuff.device.pairing_config_factory = lambda _c: PairingConfig(sc=True, mitm=True, bonding=True,
                                                                      delegate=ShowsPasskey())
    await cuff.power_on()
    await cuff.advertise()
    return cuff


async def speaker(radio: VirtualRadio) -> None:
    """A Bluetooth speaker next door to the cuff: advertises, but no health service."""
    device = radio.new_device("JBL Flip 6", SPEAKER)
    await device.power_on()
    data = AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, b"JBL Flip 6"),
                            (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(UUID("FE2C")))])
    await device.start_advertising(advertising_data=bytes(data), advertising_interval_min=20,
                                   advertising_interval_max=20)


def backups(config: Path) -> list[Path]:
    return list(config.parent.glob(config.name + ".bak-*"))


def content(path: Path) -> bytes:
    return path.read_bytes()


def backends(radio: VirtualRadio) -> BleBackends:
    return BleBackends(BumbleScanner, BumbleClient, {"radio": radio})


async def test_pairing_lists_health_devices_pairs_with_the_passkey_sets_clocks_and_asks_the_scale_slot(
    kit: Path, host: FakeBlueZHost
) -> None:
    cuff = await a_d_cuff(host.radio)
    scale = Scale(host.radio, battery=64)
    await scale.power_on()
    await scale.advertise()
    await speaker(host.radio)
    questions: list[str] = []
    answers = iter(["1, 2", str(PASSKEY), "2"])

    def ask(question: str) -> str:
        questions.append(question)
        return next(answers)

    printed: list[str] = []
    paired = await pair_devices(kit, PairRequest(scan_s=0.6), backends=backends(host.radio), platform=host.platform,
                                ask=ask, out=printed.append)
    listing = [line for line in printed if line.startswith(" ")]
    assert listing[0].startswith(" 1. body_weight       SIM-SCALE") and "-50 dBm" in listing[0]
    assert listing[1].startswith(" 2. blood_pressure    A&D_UA-651BLE_0042") and "(and-ua-651ble)" in listing[1]
    assert "1 other device(s) that are not health devices" in listing[2]
    assert questions == ["pair which? numbers or addresses, comma separated: ",
                         f"passkey for {CUFF} (A&D_UA-651BLE_0042), Enter if it shows none: ",
                         f"{scale.address} is a shared scale: which user slot is the patient's? "]
    assert [p.nearby.address for p in paired] == [scale.address, CUFF]

    # The passkey went to BlueZ through the agent; the link is bonded; both clocks were set.
    assert ("passkey", CUFF) in host.agents[0].requests
    assert await host.bonded(CUFF)
    assert cuff.time_writes and scale.time_writes
    devices = [d.model_dump(exclude_none=True) for d in load_settings(kit).devices]
    assert devices == [
        {"address": scale.address, "kind": "body_weight", "model": "SIM-SCALE-1", "serial": "SIMSCALE0001", "user": 2},
        {"address": CUFF, "kind": "blood_pressure", "model": "UA-651BLE", "serial": "5150042",
         "profile": "and-ua-651ble", "passkey": PASSKEY},
    ]
    assert f"{CUFF}: paired, blood_pressure, model UA-651BLE, serial 5150042, battery 77 %, clock set" in \
        "\n".join(printed)
    assert backups(kit)  # the file before pairing is kept

    # Pairing again is harmless: already paired devices are kept as they are.
    again = await pair_devices(kit, PairRequest(addresses=[CUFF], scan_s=0.3), backends=backends(host.radio),
                               platform=host.platform, out=printed.append)
    assert again == [] and f"{CUFF}: already paired with this kit; kept as it is" in printed


async def test_a_device_that_is_not_a_health_device_is_refused_and_nothing_changes(
    kit: Path, host: FakeBlueZHost
) -> None:
    await a_d_cuff(host.radio)
    await speaker(host.radio)
    before = content(kit)
    with pytest.raises(PairError) as refused:
        await pair_devices(kit, PairRequest(addresses=[CUFF, SPEAKER], passkeys={CUFF: PASSKEY}, scan_s=0.5),
                           backends=backends(host.radio), platform=host.platform, out=lambda _l: None)
    assert str(refused.value) == (f"{SPEAKER} (JBL Flip 6) is not a health device (it advertises no health service): "
                                  "refused; nothing paired")
    assert content(kit) == before and not await host.bonded(CUFF)


async def test_a_neighbours_device_is_refused_by_its_serial_and_its_bond_removed(
    kit: Path, host: FakeBlueZHost
) -> None:
    neighbours = await a_d_cuff(host.radio, serial="5159999")
    before = content(kit)
    with pytest.raises(PairError, match=r"has serial '5159999', not one of this kit's \(5150042\): a neighbour's"):
        await pair_devices(kit, PairRequest(addresses=[CUFF], passkeys={CUFF: PASSKEY}, serials={"5150042"},
                                            scan_s=0.5), backends=backends(host.radio), platform=host.platform,
                           out=lambda _l: None)
    assert neighbours.connections == 1  # read once to learn its serial ...
    assert not await host.bonded(CUFF)  # ... and no bond left with it
    assert content(kit) == before


async def test_a_wrong_passkey_fails_pairing_with_one_line_and_adds_nothing(kit: Path, host: FakeBlueZHost) -> None:
    await a_d_cuff(host.radio)
    before = content(kit)
    with pytest.raises(PairError, match=f"{CUFF}: pairing failed \\(the wrong passkey\\?\\)"):
        await pair_devices(kit, PairRequest(addresses=[CUFF], passkeys={CUFF: 111111}, scan_s=0.5),
                           backends=backends(host.radio), platform=host.platform, out=lambda _l: None)
    assert ("passkey", CUFF) in host.agents[0].requests
    assert content(kit) == before and not await host.bonded(CUFF)


async def test_a_shared_scale_without_a_slot_is_refused(kit: Path, host: FakeBlueZHost) -> None:
    scale = Scale(host.radio)
    await scale.power_on()
    await scale.advertise()
    with pytest.raises(PairError, match=f"is a shared scale: say which user slot is the patient's \\(--user "
                                        f"{scale.address}=N\\)"):
        await pair_devices(kit, PairRequest(addresses=[scale.address], scan_s=0.5), backends=backends(host.radio),
                           platform=host.platform, out=lambda _l: None)
    assert load_settings(kit).devices == []


def test_kinds_come_from_the_advertised_services_and_weak_signals_are_refused() -> None:
    base = "-0000-1000-8000-00805f9b34fb"
    assert classify("SIM-OXI", [f"00001822{base}"], []) == ("spo2", None, False)
    assert classify("MIBCS", [], [f"0000181b{base}"]) == ("body_weight", "xiaomi-mi-body-composition", True)
    assert classify("JBL Flip 6", [f"0000fe2c{base}"], []) == (None, None, False)
    far = {"F0:00:00:00:00:01": Nearby("F0:00:00:00:00:01", "SIM-SCALE", -91, "body_weight", None)}
    assert refusals(["F0:00:00:00:00:01"], far, -80) == [
        "F0:00:00:00:00:01 (SIM-SCALE) is heard at -91 dBm, too weak to be in this room: a neighbour's? Bring the "
        "kit's device next to the box; refused"]
    assert refusals(["F0:00:00:00:00:02"], far, -80)[0].startswith("F0:00:00:00:00:02 was not heard")
    assert health_table([]) == ["no health device heard: wake the devices (take a measurement) and scan again"]


def simulated_home_kit(tmp_path: Path) -> Path:
    """A kit whose device source is the simulated home (a technician's or CI's configuration)."""
    from gateway.kit import config_file
    from gateway.kit.provision import provision

    config = provision(provisioning(tmp_path, Office.create(tmp_path / "office"), 8883)).config
    data = config_file.read(config)
    data["device_source"] = "simulated-home"
    config_file.write(config, data)
    return config


def test_a_simulated_home_kit_is_paired_without_bluez_with_the_same_prompts_and_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19.6: `kit pair` with the simulated home needed BlueZ (it scanned through BlueZ and registered
    the pairing agent on the system bus). Now it scans and pairs through the source's own radio."""
    from tests.kit_support import gateway

    config = simulated_home_kit(tmp_path)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-system-bus'}")  # no D-Bus, no BlueZ
    questions: list[str] = []
    answers = iter(["1, 2", "2"])

    def ask(question: str = "") -> str:
        questions.append(question)
        return next(answers)

    monkeypatch.setattr("builtins.input", ask)
    ran = gateway("kit", "pair", "--config", str(config), "--scan-seconds", "0.5")
    assert ran.returncode == 0, ran.stderr
    listing = [line for line in ran.stdout.splitlines() if line.startswith(" ")]
    assert listing[0].startswith(" 1. blood_pressure    SIM-BPM ") and "F0:5E:1A:00:00:01" in listing[0]
    assert listing[1].startswith(" 2. body_weight       SIM-SCALE ") and "F0:5E:1A:00:00:03" in listing[1]
    assert questions == ["pair which? numbers or addresses, comma separated: ",
                         "F0:5E:1A:00:00:03 is a shared scale: which user slot is the patient's? "]
    assert [d.model_dump(exclude_none=True) for d in load_settings(config).devices] == [
        {"address": "F0:5E:1A:00:00:01", "kind": "blood_pressure", "model": "SIM-BPM-1", "serial": "SIMBPM0001"},
        {"address": "F0:5E:1A:00:00:03", "kind": "body_weight", "model": "SIM-SCALE-1", "serial": "SIMSCALE0001",
         "user": 2},
    ]
    assert "F0:5E:1A:00:00:01: paired, blood_pressure, model SIM-BPM-1, serial SIMBPM0001" in ran.stdout
    assert ran.stdout.rstrip().endswith(f"2 device(s) added to {config}")


async def test_the_simulated_home_s_radio_answers_a_passkey_as_bluez_s_agent_does(kit: Path) -> None:
    """Without BlueZ, the passkey the technician types reaches the simulated radio's pairing: the right
    one bonds, a wrong one fails pairing and adds nothing."""
    from gateway.ble import backends_of
    from hardware_sims.home_radio import HomeRadio

    radio = await HomeRadio.start(("F0:5E:1A:00:00:01", "SIM-BPM-1", "SIMBPM0001"))
    cuff = await a_d_cuff(radio.radio)
    cuff.pairing_mode = True  # held in pairing mode: it advertises again after the failed attempt
    before = content(kit)
    with pytest.raises(PairError, match=f"{CUFF}: pairing failed \\(the wrong passkey\\?\\)"):
        await pair_devices(kit, PairRequest(addresses=[CUFF], passkeys={CUFF: 111111}, scan_s=0.5),
                           backends=backends_of(radio), platform=radio.answer_pairing, out=lambda _l: None)
    assert content(kit) == before
    paired = await pair_devices(kit, PairRequest(addresses=[CUFF], passkeys={CUFF: PASSKEY}, scan_s=0.5),
                                backends=backends_of(radio), platform=radio.answer_pairing, out=lambda _l: None)
    assert [p.nearby.address for p in paired] == [CUFF]
    adapter = await radio.radio.adapter()
    assert adapter.keystore is not None and await adapter.keystore.get(str(random_static(CUFF))) is not None
    assert [d.passkey for d in load_settings(kit).devices] == [PASSKEY]
