"""What a device session hands the gateway, and what the gateway answers: whether the device may now forget the value.

A device's memory (RACP "delete") is erased only for values the gateway has committed to its sealed outbox,
never for one it only holds in memory or had to refuse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum


class Delivery(StrEnum):
    """What became of one value a device sent: stored, not a reading, or not stored (the device must keep it)."""

    STORED = "stored"  # committed to the sealed outbox, now or earlier (a duplicate of a stored one)
    NOT_A_READING = "not_a_reading"  # a device clock, a settling value, a value rejected with its reason
    NOT_STORED = "not_stored"  # only in memory, refused, or waiting for someone to claim it: keep it on the device

    @property
    def device_may_forget(self) -> bool:
        """Whether the device may now delete the value from its memory: only when it is not `NOT_STORED`."""
        return self is not Delivery.NOT_STORED


# (device address, characteristic UUID, value bytes) -> what became of the value.
Deliver = Callable[[str, str, bytes], Awaitable[Delivery]]
