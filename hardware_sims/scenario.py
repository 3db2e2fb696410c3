"""Scenarios as data (`hardware_sims/scenarios/*.toml`): days of readings a patient takes, played on
simulated devices with their clocks set to the day each reading was taken."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

from hardware_sims.blood_pressure import STATUS_BODY_MOVEMENT, STATUS_CUFF_TOO_LOOSE, CuffResult
from hardware_sims.gatt_devices import (
    BloodPressureCuff,
    GattDevice,
    GlucoseMeter,
    PulseOximeter,
    Scale,
    SpotCheck,
    Thermometer,
)

_CUFF_STATUS = {"cuff_too_loose": STATUS_CUFF_TOO_LOOSE, "body_movement": STATUS_BODY_MOVEMENT}
_OXIMETER_STATUS = {"questionable": 1 << 14}


@dataclass(frozen=True)
class ScenarioReading:
    day: int  # 0 = today, -1 = yesterday...
    kind: str
    values: dict[str, Any]
    status: tuple[str, ...]
    expect: str | None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    profile: str
    readings: tuple[ScenarioReading, ...]

    @property
    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.readings})


def scenario_names() -> list[str]:
    folder = resources.files("hardware_sims") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name: str) -> Scenario:
    if name not in scenario_names():
        raise KeyError(f"no scenario {name!r} (known: {', '.join(scenario_names())})")
    data = tomllib.loads((resources.files("hardware_sims") / "scenarios" / f"{name}.toml").read_text("utf-8"))
    readings = []
    for raw in data["readings"]:
        raw = dict(raw)
        readings.append(ScenarioReading(day=raw.pop("day"), kind=raw.pop("kind"), status=tuple(raw.pop("status", ())),
                                        expect=raw.pop("expect", None), values=raw))
    return Scenario(data["name"], data["description"], data["profile"], tuple(readings))


def _status(names: tuple[str, ...], table: dict[str, int]) -> int | None:
    return sum(table[n] for n in names) if names else None


async def play(scenario: Scenario, devices: dict[str, GattDevice], *, hour: int = 8) -> None:
    """Take every reading on its device, with the device clock set to that day (08:00, 10 minutes
    apart), then put the clocks right: the gateway finds the readings in the devices' memories."""
    minute: dict[int, int] = {}
    for r in scenario.readings:
        device = devices[r.kind]
        step = minute.get(r.day, 0)
        minute[r.day] = step + 10
        clock_now = device.clock() - device.clock_offset
        taken = clock_now.replace(hour=hour, minute=0, second=0) + timedelta(days=r.day, minutes=step)
        device.clock_offset = taken - clock_now
        v = r.values
        if isinstance(device, BloodPressureCuff):
            await device.measure(CuffResult(v["systolic"], v["diastolic"], v.get("pulse"),
                                            status=_status(r.status, _CUFF_STATUS)))
        elif isinstance(device, PulseOximeter):
            await device.measure(SpotCheck(v["spo2"], v["pulse"], status=_status(r.status, _OXIMETER_STATUS)))
        elif isinstance(device, Scale):
            await device.measure(Decimal(str(v["weight"])), v.get("user"))
        elif isinstance(device, Thermometer):
            await device.measure(Decimal(str(v["temperature"])))
        elif isinstance(device, GlucoseMeter):
            await device.measure(Decimal(str(v["glucose"])))
    for device in devices.values():
        device.clock_offset = timedelta(0)
