"""One reading per measurement from a continuous pulse oximeter.

A fingertip oximeter streams about one value a second while the finger is in; storing each would
flood the outbox and the history, so a session keeps one. Which one is a safety decision
(docs/ble.md, hazard log):

- values the device calls early estimates (PLX "measurement ongoing" / "early estimated data") before
  it first settles are superseded by what it settles on: they are the algorithm converging;
- the reading is the device's settled value, the last one it flagged with nothing;
- **but a value the device only doubted (questionable, poor signal, low perfusion — or provisional
  after it had settled) that is worse (lower SpO2) than the settled value wins, stored with its
  flags**: a milder value is never kept over a worse one the device merely doubted. Its flags make
  zoning keep its zone (a red stays red) and ask the patient for a control measurement;
- with no settled value at all, the worst of what came, with its flags;
- nothing decodable at all: the last value, so its rejection is counted and logged.

"Worse" is the lower SpO2 (at equal SpO2 the later value): the pulse a doubtful signal gives is the
least reliable number of the pair, and ranking by it would need thresholds, which are zoning's.
Pure: values in, a choice out; no radio, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from drivers.measurement import DecodeError, DeviceFlag
from drivers.pulse_oximeter import decode_continuous

EARLY_ESTIMATE = DeviceFlag.PROVISIONAL
DOUBTFUL = frozenset({DeviceFlag.QUESTIONABLE_MEASUREMENT, DeviceFlag.POOR_SIGNAL, DeviceFlag.LOW_PERFUSION})


@dataclass(frozen=True)
class _Value:
    characteristic: str
    data: bytes
    spo2: Decimal


def _worse(candidate: _Value, kept: _Value | None) -> _Value:
    """The lower SpO2; at equal SpO2 the later value (the candidate)."""
    return candidate if kept is None or candidate.spo2 <= kept.spo2 else kept


class ContinuousSelection:
    """Chooses the one value of a continuous oximeter's stream to deliver, by the rules above.

    Feed it every notification (`offer`), then ask once for the `choice`.
    """

    def __init__(self) -> None:
        self._settled: _Value | None = None  # the last value with no flag of doubt
        self._doubted: _Value | None = None  # the worst doubted value that counts (see the module text)
        self._early: _Value | None = None  # the worst early estimate before the device first settled
        self._undecodable: tuple[str, bytes] | None = None

    def offer(self, characteristic: str, data: bytes) -> None:
        """Take one notification of the stream (a PLX continuous value); an undecodable one only as a last resort."""
        try:
            m = decode_continuous(data)
        except DecodeError:
            self._undecodable = (characteristic, data)
            return
        value = _Value(characteristic, data, m.components["spo2"].value)
        if not m.flags & (DOUBTFUL | {EARLY_ESTIMATE}):
            self._settled = value
        elif EARLY_ESTIMATE in m.flags and not m.flags & DOUBTFUL and self._settled is None:
            self._early = _worse(value, self._early)
        else:
            self._doubted = _worse(value, self._doubted)

    def choice(self) -> tuple[str, bytes] | None:
        """The value to deliver for this measurement (characteristic, bytes), or None if none came."""
        chosen: _Value
        if self._settled is not None:
            doubted = self._doubted
            chosen = doubted if doubted is not None and doubted.spo2 < self._settled.spo2 else self._settled
        elif self._early is not None:
            chosen = _worse(self._early, self._doubted)
        elif self._doubted is not None:
            chosen = self._doubted
        else:
            return self._undecodable
        return chosen.characteristic, chosen.data
