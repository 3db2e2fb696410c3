"""Time per reading as one day's readings pile up (issue 17.4): the day's first readings against those
after N same-day readings, for the pipeline as it is and for the same pipeline keeping the whole day in
memory (as it did before issue 17.4), interleaved in one process so both see the same machine.

    .venv/bin/python bench/pipeline_day.py [--readings 400] [--sample 20] [--rounds 3]

Feeds time-stamped cuff readings of one local day, a minute apart, through `Pipeline.deliver` with a
real sealed outbox. Prints, per variant, the median wall time and CPU time (the process's, threads
included: steadier on a shared machine) per reading of the first `sample` readings and of the `sample`
after `readings`, their ratio, and how many readings the pipeline holds in memory (`history`) at the end.
The bound is start-up's: of each kind the latest LATEST_DAY_KEPT readings of its latest day.
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
from typing import NamedTuple
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
from zoning import PastReading, local_date, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
CUFF = "F0:5E:1A:00:00:01"
DAY = datetime(2026, 3, 2, 0, 1, tzinfo=OSLO)  # 1,400 minutes of readings still fit in this local day


def cuff_value(i: int) -> bytes:
    """A time-stamped Blood Pressure Measurement, minute `i` of the day (so a different measurement each)."""
    when = (DAY + timedelta(minutes=i)).replace(tzinfo=None)
    return (bytes([0b0000_0110]) + sfloat(110 + i % 60) + sfloat(70 + i % 20) + b"\xff\x07" + date_time(when)
            + sfloat(60 + i % 30))


class WholeDay(Pipeline):
    """The rule before issue 17.4: every reading of a kind's latest day kept in memory, without bound."""

    def _remember_recent(self, past: PastReading) -> None:
        same = [p for p in self.history if p.kind == past.kind]
        day = local_date(past.effective, OSLO)
        latest = max((local_date(p.effective, OSLO) for p in same), default=None)
        if latest is None or day > latest:
            self.history = [p for p in self.history if p.kind != past.kind] + [past]
        elif day == latest:
            self.history.append(past)


class Run(NamedTuple):
    first_wall: float
    later_wall: float
    first_cpu: float
    later_cpu: float
    kept: int


async def feed(folder: Path, kind: type[Pipeline], readings: int, sample: int) -> Run:
    """One day's readings through a new pipeline of `kind` on a new outbox."""
    outbox = SealedOutbox(folder / f"{kind.__name__}.sqlite3", os.urandom(32))
    device = DeviceSection(address=CUFF, kind=MeasurementKind.BLOOD_PRESSURE, serial="SIMBPM0001")
    plan = standard_plan(load_profile("standard-blood-pressure"), load_advice(), date(2026, 1, 1))
    clock = [DAY.astimezone(UTC)]
    pipeline = kind(patient="p-bench", devices={CUFF: device}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5), now=lambda: clock[0])
    await pipeline.start()
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(readings + sample):
        clock[0] = (DAY + timedelta(minutes=i, seconds=10)).astimezone(UTC)
        started, started_cpu = time.perf_counter(), time.process_time()
        delivered = await pipeline.deliver(CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, cuff_value(i))
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert delivered is Delivery.STORED, delivered
    kept = len(pipeline.history)
    outbox.close()
    m = statistics.median
    return Run(m(wall[:sample]), m(wall[readings:]), m(cpu[:sample]), m(cpu[readings:]), kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=400, help="same-day readings before the second sample")
    parser.add_argument("--sample", type=int, default=20, help="readings timed in each sample")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant, interleaved")
    args = parser.parse_args()
    variants: dict[str, type[Pipeline]] = {"bounded (now)": Pipeline, "whole day (before)": WholeDay}
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, kind in variants.items():
            with tempfile.TemporaryDirectory() as tmp:
                runs[name].append(asyncio.run(feed(Path(tmp), kind, args.readings, args.sample)))
    best = {name: Run(*(min(values) for values in zip(*r, strict=True))) for name, r in runs.items()}
    for name, r in best.items():
        print(f"{name:20} first {args.sample}: {r.first_wall * 1e3:6.2f} ms wall {r.first_cpu * 1e3:6.2f} ms CPU; "
              f"after {args.readings}: {r.later_wall * 1e3:6.2f} ms wall {r.later_cpu * 1e3:6.2f} ms CPU; "
              f"ratio {r.later_wall / r.first_wall:5.2f} wall {r.later_cpu / r.first_cpu:5.2f} CPU; "
              f"{r.kept} readings in memory")
    now, before = best["bounded (now)"], best["whole day (before)"]
    print(f"ratio before / now after {args.readings} same-day readings: {before.later_wall / now.later_wall:.2f} "
          f"wall, {before.later_cpu / now.later_cpu:.2f} CPU (best of {args.rounds} rounds each)")


if __name__ == "__main__":
    main()
