"""Every device source offers the whole `DeviceSource` interface, optional abilities included, so the
gateway and its pages ask a source what it declares and never probe it (issue 17, item 8)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from gateway.ble import BleDeviceSource
from gateway.service import BaseDeviceSource, DeviceSource, IdleDeviceSource, open_device_source
from gateway.service import device_sources as sources_module
from gateway.settings import ConfigError, DeviceSection
from hardware_sims.home import SimulatedHome

CUFF = "F0:5E:1A:00:00:01"


def every_source() -> Iterator[Any]:
    yield IdleDeviceSource()
    yield SimulatedHome(address=CUFF)
    yield BleDeviceSource([DeviceSection.model_validate({"address": CUFF, "kind": "blood_pressure"})])


@pytest.mark.parametrize("source", list(every_source()), ids=lambda s: type(s).__name__)
def test_every_source_offers_the_whole_interface(source: Any) -> None:
    assert isinstance(source, DeviceSource)
    # A radio to scan and pair through (issue 19.6): BlueZ's, the simulated home's; the idle source has none.
    assert source.scans_on_request is not isinstance(source, IdleDeviceSource)


def test_the_not_supported_answers_and_what_each_source_can_say() -> None:
    idle, home = IdleDeviceSource(), SimulatedHome(address=CUFF)
    for source in (idle, home):
        assert source.reports_devices is False and source.device_status() == []
        assert dict(source.unprovisioned_heard()) == {}
    assert idle.listed_devices() == []
    assert home.listed_devices() == [(CUFF, f"simulated blood_pressure {home.monitor.model}")]
    ble = BleDeviceSource([DeviceSection.model_validate({"address": CUFF, "kind": "blood_pressure"})])
    ble.unprovisioned["F0:AA:BB:CC:DD:01"] += 2
    assert ble.reports_devices is True and [d.id for d in ble.device_status()] == [CUFF]
    assert ble.unprovisioned_heard() == {"F0:AA:BB:CC:DD:01": 2} and ble.listed_devices() == []


async def test_the_idle_source_delivers_nothing_until_it_is_cancelled() -> None:
    delivered: list[object] = []

    async def sink(*value: object) -> None:
        delivered.append(value)

    task = asyncio.create_task(IdleDeviceSource().run(sink))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert delivered == []
    assert await IdleDeviceSource().pairing_radio() is None  # not supported: no radio


def test_a_source_without_the_interface_is_refused_when_it_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    class OnlyRuns:
        async def run(self, sink: object) -> None:
            return None

    class Complete(BaseDeviceSource):
        async def run(self, sink: object) -> None:
            return None

    found = {"only-runs": OnlyRuns, "complete": Complete}

    def entry_points(group: str) -> list[EntryPoint]:
        return [EntryPoint(name, f"x:{name}", group) for name in found]

    monkeypatch.setattr(sources_module, "entry_points", entry_points)
    monkeypatch.setattr(EntryPoint, "load", lambda self: found[self.name])
    with pytest.raises(ConfigError, match="does not offer the DeviceSource interface"):
        open_device_source("only-runs")
    assert isinstance(open_device_source("complete"), Complete)


async def test_the_ble_source_s_pairing_scan_hears_its_running_scan_and_starts_no_second_discovery() -> None:
    """BlueZ allows one discovery per D-Bus client (a second StartDiscovery: InProgress, and either scan's
    StopDiscovery ends both): the technician's pairing scan beside a running BLE source listens to the
    source's own scan instead of starting one."""
    from gateway.ble import BleBackends, backends_of, pairing_scan
    from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
    from hardware_sims.gatt_devices import Scale
    from hardware_sims.radio import VirtualRadio

    radio = VirtualRadio()
    scale = Scale(radio)
    await scale.power_on()
    await scale.advertise()
    starts: list[object] = []
    start = radio.start_scanning

    async def counted(listener: Any) -> None:
        starts.append(listener)
        await start(listener)

    radio.start_scanning = counted  # type: ignore[method-assign]
    source = BleDeviceSource([], backends=BleBackends(BumbleScanner, BumbleClient, {"radio": radio}))

    async def sink(*_value: object) -> None:
        return None

    task = asyncio.create_task(source.run(sink))  # type: ignore[arg-type]
    try:
        while not radio.scanning:
            await asyncio.sleep(0.01)
        pairing = await source.pairing_radio()
        assert pairing is not None
        heard = await pairing_scan(backends_of(pairing), 0.5)
        assert [(n.address, n.kind) for n in heard] == [(scale.address, "body_weight")]
        assert len(starts) == 1 and radio.scanning  # the source's own scan, still running
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
