"""The simulated home's radio: its devices as real GATT servers on a bumble `VirtualRadio`, held in
pairing mode, so that a technician (`kit pair`, the technician page's pairing scan) scans and pairs them
through bleak's API as on the box — without BlueZ or D-Bus. Needs the `sim` extra (bumble)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bumble.device import Connection
from bumble.pairing import PairingConfig, PairingDelegate

from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.gatt_devices import BloodPressureCuff, GattDevice, Scale
from hardware_sims.radio import VirtualRadio


class _Passkeys(PairingDelegate):
    """What BlueZ's pairing agent does on the box: the passkey typed for this device, else a refusal."""

    def __init__(self, passkey: int | None) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY)
        self.passkey = passkey

    async def get_number(self) -> int | None:
        return self.passkey

    async def confirm(self, auto: bool = False) -> bool:
        return True


class HomeRadio:
    """The gateway's `PairingRadio` interface for the simulated home (implemented here in full: the
    simulators do not import the gateway)."""

    scanner_backend = BumbleScanner
    client_backend = BumbleClient

    def __init__(self, devices: list[GattDevice], radio: VirtualRadio) -> None:
        self.radio = radio
        self.devices = devices

    @classmethod
    async def start(cls, cuff: tuple[str, str, str]) -> HomeRadio:
        """The home's cuff (address, model, serial) and its shared scale, powered on and advertising."""
        radio = VirtualRadio()
        address, model, serial = cuff
        devices: list[GattDevice] = [BloodPressureCuff(radio, address=address, model=model, serial=serial),
                                     Scale(radio)]
        for device in devices:
            device.pairing_mode = True
            await device.power_on()
            await device.advertise()
        return cls(devices, radio)

    @property
    def backend_options(self) -> dict[str, Any]:
        """The bumble backends' keyword arguments: the radio."""
        return {"radio": self.radio}

    async def answer_pairing(self, passkeys: Mapping[str, int | None]) -> None:
        """Answer the radio's pairing requests with the passkeys typed (Just Works without one)."""
        adapter = await self.radio.adapter()
        known = {a.upper(): p for a, p in passkeys.items()}

        def config_for(connection: Connection) -> PairingConfig:
            passkey = known.get(connection.peer_address.to_string(False).upper())
            return PairingConfig(sc=True, mitm=passkey is not None, bonding=True, delegate=_Passkeys(passkey))

        adapter.pairing_config_factory = config_for
