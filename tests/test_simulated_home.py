"""The demo's simulated home: a cuff cannot measure twice in one second, so no two of its values are
the same bytes — otherwise the gateway rightly drops the repeat as the same measurement fetched again
and `demo --readings N` with a short interval never reaches N."""

from __future__ import annotations

from hardware_sims.home import SimulatedHome


async def test_fast_readings_are_distinct_measurements_with_time_stamps_a_second_apart() -> None:
    home = SimulatedHome(interval_s=0.0, count=50)
    values: list[bytes] = []

    async def sink(address: str, characteristic: str, value: bytes) -> None:
        values.append(value)

    await home.run(sink)
    assert len(values) == 50
    assert len(set(values)) == 50
