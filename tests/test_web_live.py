"""What the page shows follows what is stored: a reading committed to the outbox reaches the page (the
pipeline's listeners) even when the device session that delivered it is cancelled during the commit."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.measurement import MeasurementKind
from drivers.uuids import PLX_SPOT_CHECK
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, Reading
from gateway.settings import DeviceSection
from gateway.storage import PutResult, SealedOutbox, load_or_create_key
from hardware_sims.gatt_devices import PulseOximeter, SpotCheck
from hardware_sims.radio import VirtualRadio
from tests.support import take
from zoning import Assessment, standard_plan

OSLO = ZoneInfo("Europe/Oslo")


class SlowOutbox(SealedOutbox):
    """Commits, then waits until told: a commit still under way when the session is cancelled."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.committed = threading.Event()
        self.release = threading.Event()

    def put(self, record_id: str, payload: bytes, dedup: str | None = None,
            remember: tuple[float, bytes] | None = None) -> PutResult:
        result = super().put(record_id, payload, dedup, remember)
        self.committed.set()
        self.release.wait(10)
        return result


async def test_a_committed_reading_reaches_the_page_even_if_its_session_is_cancelled(tmp_path: Path) -> None:
    outbox = SlowOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    oximeter = PulseOximeter(VirtualRadio())
    device = DeviceSection(address=oximeter.address, kind=MeasurementKind.SPO2, serial=oximeter.serial)
    pipeline = Pipeline(patient="p-1", devices={oximeter.address: device},
                        plan=standard_plan(load_profile("standard-copd"), load_advice(), date(2026, 1, 1)),
                        outbox=outbox, zone=OSLO, clock_tolerance=timedelta(minutes=5))
    shown: list[str] = []

    def page(_reading: Reading, assessment: Assessment) -> None:
        shown.append(assessment.zone.value)

    pipeline.readings.subscribe(page)
    value = oximeter.encode(SpotCheck(86, 90))  # stamped with the device's clock
    session = asyncio.get_running_loop().create_task(pipeline.deliver(oximeter.address, PLX_SPOT_CHECK, value))
    await asyncio.to_thread(outbox.committed.wait, 10)
    session.cancel()  # the link dropped while the outbox was committing
    outbox.release.set()
    for _ in range(200):
        if shown:
            break
        await asyncio.sleep(0.01)
    assert shown == ["red"] and pipeline.counts["stored"] == 1 and len(pipeline.history) == 1
    # The device sends it again (it was never told it was taken): one reading, not a second, still shown.
    outbox.release.set()
    assert await take(pipeline, oximeter.address, PLX_SPOT_CHECK, value) is None
    assert pipeline.counts["duplicate"] == 1 and shown == ["red"]
    outbox.close()
