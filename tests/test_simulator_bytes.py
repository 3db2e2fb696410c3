"""The simulated cuff's own encoding, read back by the driver: both sides written from the spec."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from drivers.blood_pressure import decode_blood_pressure
from drivers.measurement import DeviceFlag
from hardware_sims import encoding
from hardware_sims.blood_pressure import STATUS_CUFF_TOO_LOOSE, BloodPressureMonitor, CuffResult


def test_simulated_cuff_bytes_match_the_specification_layout() -> None:
    cuff = BloodPressureMonitor(address="F0:00:00:00:00:01")
    value = cuff.measurement(CuffResult(120, 80, 72, status=STATUS_CUFF_TOO_LOOSE, user=1),
                             datetime(2026, 11, 24, 9, 30, 5))
    # flags 0x1E | 120 | 80 | mean 80+40/3=93.3 -> 93 | 2026-11-24 09:30:05 | 72 | user 1 | status 0x0002
    assert value == bytes.fromhex("1E 7800 5000 5D00 EA070B18091E05 4800 01 0200")
    m = decode_blood_pressure(value)
    assert m.flags == {DeviceFlag.CUFF_TOO_LOOSE} and m.user_id == 1


def test_kpa_cuff_reads_back_within_conversion_rounding() -> None:
    cuff = BloodPressureMonitor(address="F0:00:00:00:00:01", in_kpa=True, sends_mean=False)
    m = decode_blood_pressure(cuff.measurement(CuffResult(132, 80), None))
    assert abs(m.components["systolic"].value - 132) <= Decimal("0.4")  # 0.05 kPa = 0.375 mmHg
    assert abs(m.components["diastolic"].value - 80) <= Decimal("0.4")
    assert "mean" in m.absent


def test_encoder_refuses_values_sfloat_cannot_hold() -> None:
    with pytest.raises(ValueError, match="outside the SFLOAT range"):
        encoding.sfloat(2046)
    with pytest.raises(ValueError, match="not a whole number"):
        encoding.sfloat(Decimal("1.25"), -1)
