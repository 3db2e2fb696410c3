"""BlueZ resilience, as far as it runs without BlueZ: the pairing agent over a real D-Bus daemon with
a fake BlueZ on the other end, stale-bond detection, and the scanner watchdog's decisions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from dbus_fast import DBusError
from dbus_fast.aio import MessageBus

from gateway.ble import BondRecovery, PairingAgent, PairingPolicy, Rejected, ScanWatchdog, address_of, register_agent
from tests.fake_bluez import FakeBlueZ

PROVISIONED = "/org/bluez/hci0/dev_F0_5E_1A_00_00_02"
JUST_WORKS = "/org/bluez/hci0/dev_F0_5E_1A_00_00_01"
NEIGHBOUR = "/org/bluez/hci0/dev_F0_AA_BB_CC_DD_01"
POLICY = PairingPolicy({"F0:5E:1A:00:00:01": None, "F0:5E:1A:00:00:02": 123456})


def test_the_policy_pairs_only_provisioned_devices() -> None:
    assert address_of(PROVISIONED) == "F0:5E:1A:00:00:02"
    assert POLICY.passkey("F0:5E:1A:00:00:02") == 123456
    POLICY.confirm("F0:5E:1A:00:00:01", 999999)  # Just Works: nothing to compare
    with pytest.raises(Rejected, match="not provisioned"):
        POLICY.authorize("F0:AA:BB:CC:DD:01")
    with pytest.raises(Rejected, match="not the provisioned one"):
        POLICY.confirm("F0:5E:1A:00:00:02", 654321)
    with pytest.raises(Rejected, match="none was provisioned"):
        POLICY.passkey("F0:5E:1A:00:00:01")


@pytest.mark.parametrize(("error", "stale"), [
    ("org.bluez.Error.AuthenticationFailed", True), ("ATT error: Insufficient Authentication (0x05)", True),
    ("le-connection-abort-by-local: PIN or Key Missing", True), ("device F0:.. was not found", False),
    ("could not connect after 2 attempts: timeout", False)])
def test_stale_bonds_are_recognised_by_their_errors(error: str, stale: bool) -> None:
    recovery = BondRecovery()
    assert recovery.failed("F0:5E:1A:00:00:02", error) is stale
    assert ("F0:5E:1A:00:00:02" in recovery.needs_pairing) is stale


def test_the_watchdog_restarts_the_scan_then_resets_the_adapter_and_an_advertisement_clears_it() -> None:
    dog = ScanWatchdog(quiet_s=60, restarts_before_reset=2)
    dog.started(0)
    assert [dog.check(t) for t in (30, 59)] == ["ok", "ok"]
    assert dog.check(60) == "restart_scan"
    assert dog.check(100) == "ok"  # the restart gets its own quiet period
    assert dog.check(120) == "restart_scan"
    assert dog.check(180) == "reset_adapter"
    dog.seen(190)
    assert dog.check(240) == "ok" and dog.check(250) == "restart_scan"



async def test_the_agent_registers_with_bluez_and_answers_it_over_d_bus(bus_address: str) -> None:
    bluez_bus = await MessageBus(bus_address=bus_address).connect()
    bluez = FakeBlueZ()
    bluez_bus.export("/org/bluez", bluez)
    await bluez_bus.request_name("org.bluez")

    gateway_bus = await MessageBus(bus_address=bus_address).connect()
    root = gateway_bus.get_proxy_object("org.bluez", "/org/bluez",
                                        await gateway_bus.introspect("org.bluez", "/org/bluez"))
    agent = PairingAgent(POLICY)
    manager: Any = root.get_interface("org.bluez.AgentManager1")  # dbus-fast makes call_* methods at run time
    capability = await register_agent(gateway_bus, manager, agent)
    assert capability == "KeyboardDisplay"  # one device needs a passkey
    assert bluez.registered == [("/org/dho_gateway/agent", "KeyboardDisplay")]
    assert bluez.default == ["/org/dho_gateway/agent"]

    # BlueZ now asks the agent, as it does while pairing.
    assert gateway_bus.unique_name is not None
    proxy = bluez_bus.get_proxy_object(gateway_bus.unique_name, "/org/dho_gateway/agent",
                                       await bluez_bus.introspect(gateway_bus.unique_name, "/org/dho_gateway/agent"))
    asked = proxy.get_interface("org.bluez.Agent1")
    assert await asked.call_request_passkey(PROVISIONED) == 123456  # type: ignore[attr-defined]
    await asked.call_request_confirmation(JUST_WORKS, 111111)  # type: ignore[attr-defined]
    with pytest.raises(DBusError) as refused:
        await asked.call_authorize_service(NEIGHBOUR, "00001810-0000-1000-8000-00805f9b34fb")  # type: ignore[attr-defined]
    assert refused.value.type == "org.bluez.Error.Rejected"
    assert agent.requests == [("passkey", "F0:5E:1A:00:00:02"), ("confirmation", "F0:5E:1A:00:00:01"),
                              ("service", "F0:AA:BB:CC:DD:01")]
    gateway_bus.disconnect()
    bluez_bus.disconnect()
    await asyncio.sleep(0)
