"""Jittered exponential backoff: the one way this layer (and the gateway process above it) waits
before trying again.

Jitter matters at scale: after a broker restart, 5,000 gateways must not reconnect in lockstep.
"""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Delays of `first_s`, 2×, 4×, … up to `max_s`, each drawn from the upper half of its step."""

    def __init__(self, first_s: float, max_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {first_s} and {max_s}")
        self.first_s = first_s
        self.max_s = max_s
        self._step = first_s

    def next_delay(self) -> float:
        delay = self._step * random.uniform(0.5, 1.0)
        self._step = min(self._step * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """The thing worked: the next failure starts again from `first_s`."""
        self._step = self.first_s

    async def wait(self) -> float:
        """Sleep for the next delay; returns how long it was."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay
