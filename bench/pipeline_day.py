"""Time per reading as one day's readings pile up (issue 17.4), against the first readings of the day,
in the same process.

    .venv/bin/python bench/pipeline_day.py [--readings 400] [--sample 20]

Feeds time-stamped cuff readings of one local day, a minute apart, through `Pipeline.deliver` with a
real sealed outbox, and prints the median time per reading of the first `sample` readings and of the
`sample` readings after `readings` same-day readings, the ratio, and how many readings the pipeline
keeps in memory (`history`) at the end. The in-memory day is bounded as start-up bounds it (the latest
LATEST_DAY_KEPT of a kind's latest day), so memory stops growing; the time still grows with what zoning
is given to judge (the kind's window read from the outbox), not with what is held in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# Run as a script, bench/ would come first on the path and bench/zoning.py would hide the zoning package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers import Delivery, uuids
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline
from gateway.settings import DeviceSection
from gateway.storage import SealedOutbox
from hardware_sims.encoding import date_time, sfloat
from zoning import standard_plan

OSLO = ZoneInfo("Europe/Oslo")
CUFF = "F0:5E:1A:00:00:01"
DAY = datetime(2026, 3, 2, 0, 1, tzinfo=OSLO)  # 1,400 minutes of readings still fit in this local day


def cuff_value(i: int) -> bytes:
    """A time-stamped Blood Pressure Measurement, minute `i` of the day (so a different measurement each)."""
    when = (DAY + timedelta(minutes=i)).replace(tzinfo=None)
    return (bytes([0b0000_0110]) + sfloat(110 + i % 60) + sfloat(70 + i % 20) + b"\xff\x07" + date_time(when)
            + sfloat(60 + i % 30))


async def feed(folder: Path, readings: int, sample: int) -> tuple[float, float, int]:
    """(median s per reading of the first `sample`, the same after `readings`, readings kept in memory)."""
    outbox = SealedOutbox(folder / "outbox.sqlite3", os.urandom(32))
    device = DeviceSection(address=CUFF, kind=MeasurementKind.BLOOD_PRESSURE, serial="SIMBPM0001")
    plan = standard_plan(load_profile("standard-blood-pressure"), load_advice(), date(2026, 1, 1))
    clock = [DAY.astimezone(UTC)]
    pipeline = Pipeline(patient="p-bench", devices={CUFF: device}, plan=plan, outbox=outbox, zone=OSLO,
                        clock_tolerance=timedelta(minutes=5), now=lambda: clock[0])
    times: list[float] = []
    for i in range(readings + sample):
        clock[0] = (DAY + timedelta(minutes=i, seconds=10)).astimezone(UTC)
        started = time.perf_counter()
        delivered = await pipeline.deliver(CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, cuff_value(i))
        times.append(time.perf_counter() - started)
        assert delivered is Delivery.STORED, delivered
    kept = len(pipeline.history)
    outbox.close()
    return statistics.median(times[:sample]), statistics.median(times[readings:]), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=400, help="same-day readings before the second sample")
    parser.add_argument("--sample", type=int, default=20, help="readings timed in each sample")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first, later, kept = asyncio.run(feed(Path(tmp), args.readings, args.sample))
    print(f"time per reading, first {args.sample} of the day: {first * 1000:.2f} ms")
    print(f"time per reading, after {args.readings} same-day readings: {later * 1000:.2f} ms")
    print(f"ratio (after / first): {later / first:.2f}")
    print(f"readings kept in memory (Pipeline.history) at the end: {kept}")


if __name__ == "__main__":
    main()
