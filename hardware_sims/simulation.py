"""What the gateway's `simulate` command gets through the `dho_gateway.simulation` entry point: the
radio, the bleak backends on it, the simulated devices and the scenarios. The gateway never imports
the simulators directly (layer rule)."""

from __future__ import annotations

from typing import Any

from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.gatt_devices import DEVICE_TYPES, GattDevice
from hardware_sims.radio import VirtualRadio
from hardware_sims.scenario import Scenario, ScenarioReading, load_scenario, play, scenario_names

ORDINARY: dict[str, dict[str, Any]] = {
    "blood_pressure": {"systolic": 128, "diastolic": 82, "pulse": 72},
    "spo2": {"spo2": 96, "pulse": 72},
    "body_weight": {"weight": "80.4"},
    "body_temperature": {"temperature": "36.8"},
    "glucose": {"glucose": "5.8"},
}


class BumbleSimulation:
    scanner_backend = BumbleScanner
    client_backend = BumbleClient
    device_kinds = sorted(DEVICE_TYPES)

    def __init__(self) -> None:
        self.radio = VirtualRadio()
        self.devices: dict[str, GattDevice] = {}

    @property
    def backend_options(self) -> dict[str, Any]:
        return {"radio": self.radio}

    async def add(self, kind: str) -> GattDevice:
        device = DEVICE_TYPES[kind](self.radio)
        await device.power_on()
        self.devices[kind] = device
        return device

    @staticmethod
    def scenario_names() -> list[str]:
        return scenario_names()

    @staticmethod
    def scenario(name: str) -> Scenario:
        return load_scenario(name)

    @staticmethod
    def single_device(kind: str, readings: int) -> Scenario:
        """`readings` ordinary measurements of one device, one a day up to today."""
        values: dict[str, Any] = ORDINARY[kind]
        profile = "standard-heart-failure" if kind == "body_weight" else "standard-copd"
        return Scenario(f"one {kind} device", f"{readings} ordinary reading(s)", profile, tuple(
            ScenarioReading(day=d, kind=kind, values=values, status=(), expect=None)
            for d in range(1 - readings, 1)))

    async def play(self, scenario: Scenario) -> None:
        for kind in scenario.kinds:
            if kind not in self.devices:
                await self.add(kind)
        await play(scenario, self.devices)
