"""What production on BlueZ needs beyond bleak, and what breaks other BLE gateways on the Pi:

- a **pairing agent**: bleak registers none, so headless pairing fails (bleak issue #1434; Home
  Assistant's hass-omron added its own). Ours answers only for provisioned devices: Just Works, or the
  passkey provisioning recorded for the device;
- **stale bonds**: a device that was reset, re-paired elsewhere, or rotated its keys fails with an
  authentication error for ever unless the old bond is removed;
- a **scanner watchdog**: BlueZ scanning can stop silently; with devices provisioned and no
  advertisement at all for a while, restart the scan, and if that does not help, power-cycle the adapter.

The decisions are pure classes tested in CI; the D-Bus glue below them (dbus-fast, which bleak already
depends on) cannot run here (no BlueZ, no system bus) and is tested against a fake bus: docs/ble.md.
"""

# No `from __future__ import annotations`: dbus-fast reads the D-Bus signatures ("o", "u") from them.

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dbus_fast import DBusError, Variant
from dbus_fast.service import ServiceInterface, method

log = logging.getLogger(__name__)

AGENT_PATH = "/org/dho_gateway/agent"
_DEVICE_PATH = re.compile(r"/dev_([0-9A-F]{2}(?:_[0-9A-F]{2}){5})$", re.IGNORECASE)


class Rejected(Exception):
    """The agent says no (org.bluez.Error.Rejected)."""


def address_of(device_path: str) -> str:
    """`/org/bluez/hci0/dev_F0_5E_1A_00_00_01` -> `F0:5E:1A:00:00:01`."""
    found = _DEVICE_PATH.search(device_path)
    if found is None:
        raise Rejected(f"not a BlueZ device path: {device_path}")
    return found.group(1).replace("_", ":").upper()


@dataclass(frozen=True)
class PairingPolicy:
    """Provisioned address -> passkey (None: the device pairs Just Works). Nothing else may pair."""

    passkeys: Mapping[str, int | None]

    def _provisioned(self, address: str) -> None:
        if address not in self.passkeys:
            raise Rejected(f"{address} is not provisioned for this patient")

    def passkey(self, address: str) -> int:
        self._provisioned(address)
        key = self.passkeys[address]
        if key is None:
            raise Rejected(f"{address} asked for a passkey, but none was provisioned for it")
        return key

    def confirm(self, address: str, shown: int) -> None:
        """Numeric comparison / Just Works confirmation."""
        self._provisioned(address)
        key = self.passkeys[address]
        if key is not None and key != shown:
            raise Rejected(f"{address} shows passkey {shown:06d}, not the provisioned one")

    def authorize(self, address: str) -> None:
        self._provisioned(address)


class PairingAgent(ServiceInterface):
    """org.bluez.Agent1 backed by a PairingPolicy."""

    def __init__(self, policy: PairingPolicy) -> None:
        super().__init__("org.bluez.Agent1")
        self.policy = policy
        self.requests: list[tuple[str, str]] = []  # (what, address): the audit of what was asked

    def _decide(self, what: str, device: str, decide: Any) -> Any:
        address = address_of(device)
        self.requests.append((what, address))
        try:
            return decide(address)
        except Rejected as exc:
            log.warning("pairing agent: %s rejected: %s", what, exc)
            raise DBusError("org.bluez.Error.Rejected", str(exc)) from None

    @method()
    def Release(self) -> None:
        log.info("pairing agent released by BlueZ")

    @method()
    def RequestPasskey(self, device: "o") -> "u":  # type: ignore[name-defined]  # noqa: F821
        return self._decide("passkey", device, self.policy.passkey)

    @method()
    def RequestConfirmation(self, device: "o", passkey: "u") -> None:  # type: ignore[name-defined]  # noqa: F821
        self._decide("confirmation", device, lambda a: self.policy.confirm(a, passkey))

    @method()
    def RequestAuthorization(self, device: "o") -> None:  # type: ignore[name-defined]  # noqa: F821
        self._decide("authorization", device, self.policy.authorize)

    @method()
    def AuthorizeService(self, device: "o", uuid: "s") -> None:  # type: ignore[name-defined]  # noqa: F821
        self._decide("service", device, self.policy.authorize)

    @method()
    def Cancel(self) -> None:
        log.info("pairing agent: BlueZ cancelled a request")


class AgentManager(Protocol):
    async def call_register_agent(self, path: str, capability: str) -> None: ...
    async def call_request_default_agent(self, path: str) -> None: ...


class Bus(Protocol):
    def export(self, path: str, interface: ServiceInterface) -> None: ...


async def register_agent(bus: Bus, manager: AgentManager, agent: PairingAgent) -> str:
    """Export the agent and make it BlueZ's default. KeyboardDisplay lets BlueZ use both Just Works and
    passkey entry; the policy decides per device. Returns the capability registered."""
    capability = "KeyboardDisplay" if any(k is not None for k in agent.policy.passkeys.values()) else "NoInputNoOutput"
    bus.export(AGENT_PATH, agent)
    await manager.call_register_agent(AGENT_PATH, capability)
    await manager.call_request_default_agent(AGENT_PATH)
    return capability


class Adapter(Protocol):
    async def set_powered(self, value: Variant | bool) -> None: ...


async def power_cycle(adapter: Adapter) -> None:
    """The last resort of the watchdog: adapter off and on (what bluetooth-auto-recovery does first)."""
    await adapter.set_powered(False)
    await adapter.set_powered(True)


# --- stale bonds --------------------------------------------------------------------------------

_AUTH_FAILURE = re.compile(
    r"AuthenticationFailed|Authentication Failed|Insufficient[ _](Authentication|Encryption)|"
    r"key[ _]missing|bond|0x05\b|0x0f\b", re.IGNORECASE)


@dataclass
class BondRecovery:
    """After an authentication failure, forget the device's old bond so the next pairing can work, and
    say that the device must be put in pairing mode (a technician's or patient's action)."""

    needs_pairing: set[str] = field(default_factory=set)

    def failed(self, address: str, error: str) -> bool:
        """True when `error` means a stale bond: forget it now."""
        if _AUTH_FAILURE.search(error):
            self.needs_pairing.add(address)
            return True
        return False

    def paired(self, address: str) -> None:
        self.needs_pairing.discard(address)


# --- scanner watchdog ---------------------------------------------------------------------------

WatchdogAction = Literal["ok", "restart_scan", "reset_adapter"]


@dataclass
class ScanWatchdog:
    """No advertisement at all for `quiet_s` while scanning: restart the scan; still nothing after
    `restarts_before_reset` restarts: reset the adapter. Any advertisement clears it."""

    quiet_s: float = 300.0
    restarts_before_reset: int = 2
    last_advertisement: float | None = None
    restarts: int = 0
    _last_action: float = 0.0

    def started(self, now: float) -> None:
        self.last_advertisement = now
        self._last_action = now

    def seen(self, now: float) -> None:
        self.last_advertisement = now
        self.restarts = 0

    def check(self, now: float) -> WatchdogAction:
        if self.last_advertisement is None:
            return "ok"
        if now - max(self.last_advertisement, self._last_action) < self.quiet_s:
            return "ok"
        self._last_action = now
        if self.restarts < self.restarts_before_reset:
            self.restarts += 1
            return "restart_scan"
        self.restarts = 0
        return "reset_adapter"


async def connect_bluez(passkeys: Mapping[str, int | None], adapter: str = "hci0") -> Callable[[], Awaitable[None]]:
    """On the gateway: register our pairing agent with BlueZ on the system bus, and return the
    adapter power-cycle the scanner watchdog uses as its last resort."""
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    root = bus.get_proxy_object("org.bluez", "/org/bluez", await bus.introspect("org.bluez", "/org/bluez"))
    manager: Any = root.get_interface("org.bluez.AgentManager1")
    capability = await register_agent(bus, manager, PairingAgent(PairingPolicy(passkeys)))
    log.info("BlueZ pairing agent registered (%s)", capability)
    path = f"/org/bluez/{adapter}"
    device: Any = bus.get_proxy_object("org.bluez", path, await bus.introspect("org.bluez", path))
    power: Adapter = device.get_interface("org.bluez.Adapter1")

    async def reset() -> None:
        await power_cycle(power)

    return reset
