"""Wire readings as a gateway would send them, for the central side's tests (no gateway code needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from protocol import ReadingBatch, WireAssessment, WireDevice, WireQuantity, WireReading

UNITS = {"systolic": "mm[Hg]", "diastolic": "mm[Hg]", "mean": "mm[Hg]", "pulse": "/min", "spo2": "%",
         "weight": "kg", "temperature": "Cel", "glucose": "mmol/L"}
DEFAULTS: dict[str, dict[str, str]] = {
    "blood_pressure": {"systolic": "128", "diastolic": "82", "mean": "97", "pulse": "64"},
    "spo2": {"spo2": "94", "pulse": "72"},
    "body_weight": {"weight": "81.35"},
    "body_temperature": {"temperature": "37.4"},
    "glucose": {"glucose": "6.2"},
}


def reading(
    kind: str = "blood_pressure",
    *,
    patient: str = "p-1",
    zone: str = "green",
    values: dict[str, str] | None = None,
    device: str = "F0:5E:1A:00:00:01",
    at: datetime | None = None,
    absent: dict[str, str] | None = None,
    **extra: Any,
) -> WireReading:
    at = at or datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    components = {k: WireQuantity(value=Decimal(v), unit=UNITS[k]) for k, v in (values or DEFAULTS[kind]).items()}
    return WireReading(
        id=extra.pop("id", None) or uuid.uuid4(), patient=patient, type=kind,  # type: ignore[arg-type]
        components=components, effective=at, time_source="device_synced",
        device_time=at.replace(tzinfo=None) + timedelta(hours=1), clock_correction_s=0.0,
        device=WireDevice(id=device, model="UA-651BLE", serial=None, firmware="1.2", battery=80),
        absent=absent or {},
        assessment=WireAssessment(zone=zone, rules=[], advice=[], profile="hf-standard",  # type: ignore[arg-type]
                                  profile_version=3),
        received=at + timedelta(seconds=2), **extra,
    )


def batch(gateway: str, readings: list[WireReading]) -> bytes:
    return ReadingBatch(gateway=gateway, batch=uuid.uuid4(), sent=datetime.now(UTC), readings=readings
                        ).model_dump_json().encode()
