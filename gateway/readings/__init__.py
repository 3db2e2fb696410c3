"""From a device's value to a stored, judged reading: identity, time correction, the pipeline."""

from __future__ import annotations

from gateway.readings.answers import answers_to_wire
from gateway.readings.clock import UNCERTAIN, correct_live_time, correct_with_device_clock
from gateway.readings.ids import uuid7
from gateway.readings.pipeline import Pipeline, Unassigned
from gateway.readings.reading import DeviceRef, Reading, to_wire

__all__ = [
    "UNCERTAIN",
    "DeviceRef",
    "Pipeline",
    "Reading",
    "Unassigned",
    "answers_to_wire",
    "correct_live_time",
    "correct_with_device_clock",
    "to_wire",
    "uuid7",
]
