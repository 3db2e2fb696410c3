"""The one backoff rule of the BLE side: pauses that double up to a ceiling, each drawn between half
and all of its nominal length, so that after a gateway restart or a power cut many devices (and many
gateways) are not retried in lockstep."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float
    max_s: float

    def nominal(self, failures: int) -> float:
        """The pause after `failures` failures in a row (1 = the first), before jitter."""
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(failures - 1, 62))

    def pause(self, failures: int) -> float:
        return self.nominal(failures) * random.uniform(0.5, 1.0)
