"""A slow outbox (a busy SD card) never loses a record fetched from a device's memory: the session
waits for every commit before it lets the device delete its records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gateway.storage import PutResult
from hardware_sims.gatt_devices import PulseOximeter, SpotCheck
from hardware_sims.radio import VirtualRadio
from tests.test_ble_sessions import home, powered, wait_until


async def test_records_fetched_while_the_outbox_is_slow_are_all_stored(tmp_path: Path) -> None:
    radio = VirtualRadio()
    oximeter = await powered(PulseOximeter(radio))
    assert isinstance(oximeter, PulseOximeter)
    for spo2 in (97, 95, 93, 91):
        await oximeter.measure(SpotCheck(spo2, 70))
    async with home(tmp_path, (oximeter, {}), radio=radio) as h:
        put = h.outbox.put

        def slow_put(*args: Any, **kwargs: Any) -> PutResult:
            time.sleep(0.12)  # longer than the session's 50 ms poll for the RACP response
            return put(*args, **kwargs)

        h.outbox.put = slow_put  # type: ignore[method-assign]
        await wait_until(lambda: oximeter.memory == [] and len(h.stored()) == 4, timeout=20)
    assert sorted(r["components"]["spo2"]["value"] for r in h.stored()) == [91.0, 93.0, 95.0, 97.0]
