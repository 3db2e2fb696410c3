"""A blood pressure monitor that speaks Blood Pressure Measurement (0x2A35) bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from hardware_sims import encoding

FLAG_KPA = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_PULSE = 0x04
FLAG_USER = 0x08
FLAG_STATUS = 0x10

STATUS_BODY_MOVEMENT = 0x0001
STATUS_CUFF_TOO_LOOSE = 0x0002
STATUS_IRREGULAR_PULSE = 0x0004
STATUS_PULSE_ABOVE_RANGE = 0x0008
STATUS_PULSE_BELOW_RANGE = 0x0010
STATUS_IMPROPER_POSITION = 0x0020


@dataclass(frozen=True)
class CuffResult:
    """What the cuff measured, in mmHg and beats per minute."""

    systolic: int
    diastolic: int
    pulse: int | None = None
    status: int | None = None  # STATUS_* bits; None leaves the status field out
    user: int | None = None


@dataclass
class BloodPressureMonitor:
    address: str
    model: str = "SIM-BPM-1"
    serial: str = "SIMBPM0001"
    in_kpa: bool = False
    sends_time: bool = True
    sends_mean: bool = True
    history: list[bytes] = field(default_factory=list)

    def measurement(self, result: CuffResult, clock: datetime | None) -> bytes:
        """The 0x2A35 value the cuff indicates for one measurement (and keeps in its memory)."""
        flags = 0
        body = b""
        mean = Decimal(result.diastolic) + (Decimal(result.systolic) - Decimal(result.diastolic)) / 3
        pressures = [Decimal(result.systolic), Decimal(result.diastolic), mean]
        if self.in_kpa:
            flags |= FLAG_KPA
            # kPa to one decimal, as kPa cuffs display it: exponent -1.
            body += b"".join(encoding.sfloat((p / Decimal("7.50062")).quantize(Decimal("0.1")), -1)
                             for p in pressures[:2])
            body += (encoding.sfloat((mean / Decimal("7.50062")).quantize(Decimal("0.1")), -1)
                     if self.sends_mean else encoding.SFLOAT_NAN)
        else:
            body += encoding.sfloat(result.systolic) + encoding.sfloat(result.diastolic)
            body += encoding.sfloat(round(mean)) if self.sends_mean else encoding.SFLOAT_NAN
        if self.sends_time and clock is not None:
            flags |= FLAG_TIME_STAMP
            body += encoding.date_time(clock)
        if result.pulse is not None:
            flags |= FLAG_PULSE
            body += encoding.sfloat(result.pulse)
        if result.user is not None:
            flags |= FLAG_USER
            body += bytes([result.user])
        if result.status is not None:
            flags |= FLAG_STATUS
            body += result.status.to_bytes(2, "little")
        value = bytes([flags]) + body
        self.history.append(value)
        return value
