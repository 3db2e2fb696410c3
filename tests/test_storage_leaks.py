"""What a copy of the outbox file gives away without any key: nothing derived from a measurement."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers import uuids
from drivers.measurement import MeasurementKind
from gateway.plans import load_advice, load_profile
from gateway.readings import Pipeline, uuid7
from gateway.settings import DeviceSection
from gateway.storage import KeyFile, SealedOutbox, destroy_keys, load_or_create_key
from hardware_sims.encoding import date_time, sfloat
from tests.support import take
from zoning import standard_plan

OSLO = ZoneInfo("Europe/Oslo")
CUFF = "AA:BB:CC:00:00:01"
TAKEN = datetime(2026, 11, 20, 8, 30, tzinfo=OSLO)


def cuff_value(systolic: int, diastolic: int, pulse: int) -> bytes:
    """Blood Pressure Measurement: mmHg, time stamp and pulse present."""
    mean_not_given = b"\xff\x07"  # SFLOAT NaN
    return (bytes([0b0000_0110]) + sfloat(systolic) + sfloat(diastolic) + mean_not_given
            + date_time(TAKEN.replace(tzinfo=None)) + sfloat(pulse))


def pipeline_on(folder: Path) -> tuple[Pipeline, SealedOutbox]:
    outbox = SealedOutbox(folder / "outbox.sqlite3", load_or_create_key(folder / "outbox.key"))
    device = DeviceSection(address=CUFF, kind=MeasurementKind.BLOOD_PRESSURE, serial="CUFF1")
    plan = standard_plan(load_profile("standard-copd"), load_advice(), date(2026, 11, 1))
    return Pipeline(patient="p-test", devices={CUFF: device}, plan=plan, outbox=outbox, zone=OSLO,
                    clock_tolerance=timedelta(minutes=5),
                    now=lambda: TAKEN.astimezone(UTC) + timedelta(seconds=20)), outbox


def every_stored_value(path: Path) -> list[object]:
    db = sqlite3.connect(path)
    values: list[object] = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in db.execute(f'SELECT * FROM "{table}"'):
            values.extend(row)
    db.close()
    return values


async def test_no_unkeyed_digest_of_a_measurement_is_stored(tmp_path: Path) -> None:
    # The attack of issue 10.1: hash every plausible cuff value and look for the digest in the file.
    pipeline, outbox = pipeline_on(tmp_path)
    value = cuff_value(171, 98, 77)
    assert await take(pipeline, CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, value) is not None
    outbox.close()
    stored = every_stored_value(tmp_path / "outbox.sqlite3")
    for device_id in (CUFF, "CUFF1"):
        material = f"{device_id}|{uuids.BLOOD_PRESSURE_MEASUREMENT}|".encode() + value
        digest = hashlib.sha256(material).hexdigest()
        assert digest not in stored and bytes.fromhex(digest) not in stored
        assert not any(isinstance(v, str) and digest[:16] in v for v in stored)


async def test_the_same_measurement_is_still_recognised_after_a_restart(tmp_path: Path) -> None:
    pipeline, outbox = pipeline_on(tmp_path)
    value = cuff_value(171, 98, 77)
    first = await take(pipeline, CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, value)
    outbox.close()
    pipeline, outbox = pipeline_on(tmp_path)
    assert first is not None
    assert await take(pipeline, CUFF, uuids.BLOOD_PRESSURE_MEASUREMENT, value) is None
    assert pipeline.counts["duplicate"] == 1 and outbox.depth() == 1
    outbox.close()


def test_the_wipe_destroys_the_key_of_the_tags(tmp_path: Path) -> None:
    store = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    store.put("r1", b"x", dedup=b"material")
    store.close()
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    wrapped_tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                      if t.endswith("_keys") or t.endswith("_key")}
    db.close()
    assert "tag_key" in wrapped_tables
    destroy_keys(tmp_path / "outbox.sqlite3", KeyFile(tmp_path / "outbox.key"))
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    for table in wrapped_tables:
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    db.close()


def test_a_red_and_a_green_reading_have_records_of_the_same_size(tmp_path: Path) -> None:
    # A zone changes the JSON's length by a few bytes ("red" vs "green", one more advice key).
    store = SealedOutbox(tmp_path / "outbox.sqlite3", load_or_create_key(tmp_path / "outbox.key"))
    for zone, advice in (("green", ""), ("red", ',"advice":["spo2.red","emergency"]')):
        entry = b'{"kind":"spo2","values":{"spo2":"%s"},"zone":"%s"}' % (b"96" if zone == "green" else b"84",
                                                                       zone.encode())
        store.put(str(uuid7()), b'{"zone":"%s"%s}' % (zone.encode(), advice.encode()),
                  remember=("spo2", 1000.0, entry))
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    assert len({n for (n,) in db.execute("SELECT length(sealed) FROM outbox")}) == 1
    assert len({n for (n,) in db.execute("SELECT length(kept) FROM history")}) == 1
    db.close()
    store.close()
