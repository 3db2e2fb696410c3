"""Reading a GATT value field by field: each read names what was cut off, so a rejection says where."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from drivers import gatt_time, ieee11073
from drivers.measurement import DecodeError


class Fields:
    """A little-endian reader over the bytes of one GATT value (`what` names it in errors).

    Each read advances `offset`; a field that runs past the end raises `DecodeError` naming the field
    and the byte it starts at.
    """

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        self.offset = 0

    def _take(self, size: int, field: str) -> bytes:
        end = self.offset + size
        if len(self.data) < end:
            raise DecodeError(
                f"{self.what}: {field} at byte {self.offset} is cut off ({len(self.data)} bytes in all)"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def uint(self, size: int, field: str) -> int:
        """The next `size` bytes as an unsigned integer."""
        return int.from_bytes(self._take(size, field), "little")

    def sint(self, size: int, field: str) -> int:
        """The next `size` bytes as a two's-complement signed integer."""
        return int.from_bytes(self._take(size, field), "little", signed=True)

    def _number(self, size: int, field: str, parse: Callable[[bytes], Decimal]) -> Decimal:
        raw = self._take(size, field)
        try:
            return parse(raw)
        except ieee11073.SpecialValue as exc:
            raise ieee11073.SpecialValue(f"{self.what}: {field} is {exc}") from None

    def sfloat(self, field: str) -> Decimal:
        """An SFLOAT; a special value raises ieee11073.SpecialValue (a DecodeError) naming the field."""
        return self._number(2, field, ieee11073.sfloat)

    def float32(self, field: str) -> Decimal:
        """The next 4 bytes as an IEEE-11073 32-bit FLOAT; `SpecialValue` (a DecodeError) for NaN, NRes, +/-INF."""
        return self._number(4, field, ieee11073.float32)

    def date_time(self, field: str = "time stamp") -> datetime | None:
        """The next 7 bytes as a GATT Date Time (naive, device wall-clock); None when the device leaves it unset."""
        return gatt_time.date_time(self._take(gatt_time.DATE_TIME_LENGTH, field))
