"""The demo's simulated home: a cuff cannot measure twice in one second, so no two of its values are
the same bytes — otherwise the gateway rightly drops the repeat as the same measurement fetched again
and `demo --readings N` with a short interval never reaches N."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from drivers.blood_pressure import decode_blood_pressure
from hardware_sims.home import SimulatedHome


async def test_fast_readings_are_distinct_measurements_with_time_stamps_a_second_apart() -> None:
    home = SimulatedHome(interval_s=0.0, count=50)
    values: list[bytes] = []

    async def sink(address: str, characteristic: str, value: bytes) -> None:
        values.append(value)

    await home.run(sink)
    assert len(values) == 50
    assert len(set(values)) == 50
    stamps = [decode_blood_pressure(v).device_time for v in values]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)
    # A run of known length starts its clock back, so no reading is dated in the future.
    assert max(s for s in stamps if s) <= datetime.now(ZoneInfo("Europe/Oslo")).replace(tzinfo=None)
