"""A fake BlueZ agent manager for the D-Bus test (no `from __future__ import annotations` here:
dbus-fast reads the D-Bus signatures from the annotations)."""

from dbus_fast.service import ServiceInterface, method


class FakeBlueZ(ServiceInterface):
    """org.bluez.AgentManager1 as BlueZ offers it; records what the gateway registers."""

    def __init__(self) -> None:
        super().__init__("org.bluez.AgentManager1")
        self.registered: list[tuple[str, str]] = []
        self.default: list[str] = []

    @method()
    def RegisterAgent(self, agent: "o", capability: "s") -> None:  # type: ignore[name-defined]  # noqa: F821
        self.registered.append((agent, capability))

    @method()
    def RequestDefaultAgent(self, agent: "o") -> None:  # type: ignore[name-defined]  # noqa: F821
        self.default.append(agent)
