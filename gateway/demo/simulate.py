"""`dho-gateway simulate`: simulated BLE devices through the gateway's real path — bleak's API, the
sessions, the pipeline, zoning, the sealed outbox — for technicians and CI. The simulators come in
through the `dho_gateway.simulation` entry point; the gateway never imports them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from drivers.measurement import MeasurementKind
from gateway.ble import BleBackends, BleDeviceSource
from gateway.demo.display import advice_lines, reading_line
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, Reading
from gateway.settings import ConfigError, DeviceSection
from gateway.storage import SealedOutbox
from zoning import Assessment, Language, standard_plan

OSLO = ZoneInfo("Europe/Oslo")


class SimReading(Protocol):
    day: int
    kind: str
    expect: str | None


class SimScenario(Protocol):
    name: str
    description: str
    profile: str
    readings: tuple[SimReading, ...]


class SimDevice(Protocol):
    address: str
    serial: str
    kind: str


class Simulation(Protocol):
    scanner_backend: type[Any]
    client_backend: type[Any]
    device_kinds: list[str]
    devices: dict[str, SimDevice]

    @property
    def backend_options(self) -> dict[str, Any]: ...
    def scenario_names(self) -> list[str]: ...
    def scenario(self, name: str) -> SimScenario: ...
    def single_device(self, kind: str, readings: int) -> SimScenario: ...
    async def play(self, scenario: SimScenario) -> None: ...


def load_simulation() -> Simulation:
    """The bumble simulation, found by entry point (the gateway never imports `hardware_sims`).

    Raises `ConfigError` when the `sim` extra is not installed or cannot load.
    """
    found = entry_points(group="dho_gateway.simulation", name="bumble")
    if not found:
        raise ConfigError("simulate: the simulators are not installed: pip install 'dho-gateway[sim]'")
    try:
        factory = next(iter(found)).load()
    except ImportError as exc:
        raise ConfigError(f"simulate: the simulators cannot load ({exc}): pip install 'dho-gateway[sim]'") from None
    simulation: Simulation = factory()
    return simulation


@dataclass
class Outcome:
    line: str
    kind: str
    effective: datetime
    zone: str


@dataclass
class ScenarioResult:
    outcomes: list[Outcome] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


async def run_scenario(scenario: SimScenario, simulation: Simulation, data_dir: Path, *,
                       language: Language = "en", out: Callable[[str], None] = print,
                       timeout_s: float = 30.0) -> ScenarioResult:
    """Play `scenario` on simulated devices through the real BLE source, pipeline and sealed outbox in `data_dir`.

    Each reading is written to `out` with its zone and advice as the pipeline takes it. Returns what was
    shown, and a mismatch for each reading whose zone is not the one the scenario expects, or for the
    readings that did not arrive within `timeout_s` seconds. Mismatches are returned, not raised.
    """
    await simulation.play(scenario)
    provisioned = [DeviceSection(address=d.address, kind=MeasurementKind(d.kind), serial=d.serial)
                   for d in simulation.devices.values()]
    advice = load_advice()
    plan = standard_plan(load_profile(scenario.profile), advice, (datetime.now(OSLO) - timedelta(days=60)).date())
    outbox = SealedOutbox(data_dir / "outbox.sqlite3", os.urandom(32))
    pipeline = Pipeline(patient="simulated-patient", devices={d.address: d for d in provisioned}, plan=plan,
                        outbox=outbox, zone=OSLO, clock_tolerance=timedelta(minutes=5))
    result = ScenarioResult()
    all_in = asyncio.Event()

    def shown(reading: Reading, assessment: Assessment) -> None:
        local = reading.effective.astimezone(OSLO)
        line = f"{local:%a %d %b %H:%M}  {reading_line(reading.measurement, assessment)}"
        result.outcomes.append(Outcome(line, reading.measurement.kind.value, reading.effective, assessment.zone.value))
        out(line)
        for text in advice_lines(assessment, advice, language):
            out(f"{'':18}-> {text}")
        if len(result.outcomes) >= len(scenario.readings):
            all_in.set()

    pipeline.readings.subscribe(shown)
    source = BleDeviceSource(provisioned, backends=BleBackends(
        simulation.scanner_backend, simulation.client_backend, simulation.backend_options), idle_s=0.5)
    task = asyncio.create_task(source.run(pipeline.deliver))
    try:
        async with asyncio.timeout(timeout_s):
            await all_in.wait()
    except TimeoutError:
        result.mismatches.append(f"only {len(result.outcomes)} of {len(scenario.readings)} readings arrived")
    finally:
        await source.settle()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()
    _compare(scenario, result)
    return result


def _compare(scenario: SimScenario, result: ScenarioResult) -> None:
    for kind in sorted({r.kind for r in scenario.readings}):
        expected = [r.expect for r in scenario.readings if r.kind == kind]
        got = sorted((o for o in result.outcomes if o.kind == kind), key=lambda o: o.effective)
        for i, (want, outcome) in enumerate(zip(expected, got, strict=False)):
            if want is not None and want != outcome.zone:
                result.mismatches.append(f"{kind} reading {i + 1}: expected {want}, got {outcome.zone}")
