"""Jittered exponential backoff: the one way this layer (and the gateway process above it) waits
before trying again.

Jitter matters at scale: after a broker restart, 5,000 gateways must not reconnect in lockstep.
"""

from __future__ import annotations

import asyncio
import random


def backoff_delay(failures: int, first_s: float, max_s: float) -> float:
    """The pause after `failures` failures in a row (1 or more): the step `first_s` × 2^(failures − 1),
    capped at `max_s`, drawn from the upper half of the step."""
    step: float = min(max_s, first_s * 2.0 ** min(max(failures - 1, 0), 64))
    return step * random.uniform(0.5, 1.0)


class Backoff:
    """Delays of `first_s`, 2×, 4×, … up to `max_s`, each drawn from the upper half of its step."""

    def __init__(self, first_s: float, max_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {first_s} and {max_s}")
        self.first_s = first_s
        self.max_s = max_s
        self._failures = 0

    def next_delay(self) -> float:
        self._failures += 1
        return backoff_delay(self._failures, self.first_s, self.max_s)

    def reset(self) -> None:
        """The thing worked: the next failure starts again from `first_s`."""
        self._failures = 0

    async def wait(self) -> float:
        """Sleep for the next delay; returns how long it was."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay
