"""Jittered exponential backoff: the one way both deployables wait before trying again.

Jitter matters at scale: after a broker restart, 5,000 gateways (or N central workers) must not
reconnect in lockstep. `protocol` is the only package both deployables import, so the rule lives here
(docs/decisions/0006-protocol-room.md); the BLE retries, the gateway's reconnects and the central's
retries all use it.
"""

from __future__ import annotations

import asyncio
import random

# 2^64 × any sensible first step is far above any ceiling; the cap only keeps the float finite.
_MAX_DOUBLINGS = 64


class Backoff:
    """Pauses of `first_s`, 2×, 4×, … up to `max_s`, each drawn from the upper half of its step.

    The pause after n failures in a row is the step `first_s` × 2^(n − 1), capped at `max_s`, drawn from
    the upper half of the step (so many callers that failed together spread apart). `jitter=False` gives
    the step itself, for a caller that has always waited exactly.

    One rule, two ways to use it:

    - a loop that retries one thing keeps the count here: `next_delay()` (or `wait()`) after each
      failure, `reset()` after a success;
    - a caller that counts failures itself (one count per device, per process) asks `delay(failures)`.
    """

    def __init__(self, first_s: float, max_s: float, *, jitter: bool = True) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {first_s} and {max_s}")
        self.first_s = first_s
        self.max_s = max_s
        self.jitter = jitter
        self._failures = 0

    def step(self, failures: int) -> float:
        """The nominal pause after `failures` failures in a row (1 = the first), before jitter; 0 for none."""
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.first_s * 2.0 ** min(failures - 1, _MAX_DOUBLINGS))

    def delay(self, failures: int) -> float:
        """The pause after `failures` failures in a row; 0 for no failure.

        The step, jittered into its upper half unless `jitter` is off. Does not touch the count
        `next_delay()` keeps.
        """
        step = self.step(failures)
        return step * random.uniform(0.5, 1.0) if self.jitter else step

    def next_delay(self) -> float:
        """Count one more failure in a row and return the pause that follows it."""
        self._failures += 1
        return self.delay(self._failures)

    def reset(self) -> None:
        """The thing worked: the next failure starts again from `first_s`."""
        self._failures = 0

    async def wait(self) -> float:
        """Count one more failure, sleep for the pause that follows it; returns how long it was."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay
