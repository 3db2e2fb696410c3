"""A fake BlueZ adapter for the kit tests (no `from __future__ import annotations` here: dbus-fast
reads the D-Bus signatures from the annotations)."""

from dbus_fast import DBusError
from dbus_fast.service import ServiceInterface, method


class FakeAdapter(ServiceInterface):
    """org.bluez.Adapter1 as far as bonds go: the devices BlueZ keeps a bond with."""

    def __init__(self, bonded: list[str]) -> None:
        super().__init__("org.bluez.Adapter1")
        self.bonded = list(bonded)  # device object paths
        self.removed: list[str] = []

    @method()
    def RemoveDevice(self, device: "o") -> None:  # type: ignore[name-defined]  # noqa: F821
        if device not in self.bonded:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        self.bonded.remove(device)
        self.removed.append(device)
