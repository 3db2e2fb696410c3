"""A patient's home full of simulated devices: the demo's and the tests' device source.

It delivers GATT values through the same call a real BLE source uses:
`await sink(address, characteristic_uuid, value_bytes)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import cycle, islice
from typing import Any
from zoneinfo import ZoneInfo

from drivers.uuids import BLOOD_PRESSURE_MEASUREMENT
from hardware_sims.blood_pressure import STATUS_IRREGULAR_PULSE, BloodPressureMonitor, CuffResult

GattSink = Callable[[str, str, bytes], Awaitable[object]]

# A week of one heart-failure patient's blood pressure, chosen to show every zone.
DEMO_SCENARIO: tuple[CuffResult, ...] = (
    CuffResult(systolic=128, diastolic=82, pulse=72),
    CuffResult(systolic=134, diastolic=86, pulse=76),
    CuffResult(systolic=106, diastolic=68, pulse=84),
    CuffResult(systolic=142, diastolic=98, pulse=95, status=STATUS_IRREGULAR_PULSE),
    CuffResult(systolic=88, diastolic=54, pulse=118),
    CuffResult(systolic=124, diastolic=80, pulse=70),
)


@dataclass(frozen=True)
class SimulatedDevice:
    address: str
    kind: str
    model: str
    serial: str


class SimulatedHome:
    """A device source (the gateway's `DeviceSource` interface, implemented here in full: the simulators
    do not import the gateway). It lists the devices it simulates, and gives a radio (`pairing_radio`)
    on which its cuff and a shared scale can be scanned for and paired; it reports nothing else."""

    reports_devices = False
    scans_on_request = True

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        count: int | None = None,
        scenario: Sequence[CuffResult] = DEMO_SCENARIO,
        clock_zone: str = "Europe/Oslo",
        clock_offset: timedelta = timedelta(0),
        address: str = "F0:5E:1A:00:00:01",  # random static: top two bits set
    ) -> None:
        self.monitor = BloodPressureMonitor(address=address)
        self._interval_s = interval_s
        self._count = count
        self._scenario = scenario
        self._zone = ZoneInfo(clock_zone)
        self._offset = clock_offset
        self.sent = 0
        self._last_time: datetime | None = None
        # Faster than one a second, the stamps step a second each (below): a run of known length starts
        # its clock that far back, so that its last stamp is now rather than in the future.
        self._lead = timedelta(seconds=count * max(0.0, 1.0 - interval_s)) if count else timedelta(0)
        self._radio: Any = None

    @property
    def devices(self) -> list[SimulatedDevice]:
        return [SimulatedDevice(self.monitor.address, "blood_pressure", self.monitor.model, self.monitor.serial)]

    def device_status(self) -> list[Any]:
        """Not supported (`reports_devices` is false): the gateway tells what the readings tell."""
        return []

    async def pairing_radio(self) -> Any:
        """The home's devices on a simulated radio, in pairing mode: its cuff (same address, model and serial
        as the one that measures) and a shared scale. Made on first use (it needs the `sim` extra, bumble)."""
        if self._radio is None:
            from hardware_sims.home_radio import HomeRadio

            m = self.monitor
            self._radio = await HomeRadio.start((m.address, m.model, m.serial))
        return self._radio

    def unprovisioned_heard(self) -> Mapping[str, int]:
        """Nothing: the simulated home has only its own devices."""
        return {}

    def listed_devices(self) -> list[tuple[str, str]]:
        """The devices it simulates, as (address, what)."""
        return [(d.address, f"simulated {d.kind} {d.model}") for d in self.devices]

    def _device_clock(self) -> datetime:
        """The cuff's time stamp for its next measurement (1 s resolution, as 0x2A35 sends it).

        A real cuff takes half a minute per measurement and never stamps two with the same second; the
        gateway treats the same bytes twice as the same measurement fetched again. So with an interval
        under a second this clock steps one second per measurement (an endless run's clock then runs ahead
        of the wall clock).
        """
        now = (datetime.now(self._zone) + self._offset - self._lead).replace(tzinfo=None, microsecond=0)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(seconds=1)
        self._last_time = now
        return now

    async def run(self, sink: GattSink) -> None:
        results = cycle(self._scenario) if self._count is None else islice(cycle(self._scenario), self._count)
        for result in results:
            value = self.monitor.measurement(result, self._device_clock())
            await sink(self.monitor.address, BLOOD_PRESSURE_MEASUREMENT, value)
            self.sent += 1
            await asyncio.sleep(self._interval_s)
