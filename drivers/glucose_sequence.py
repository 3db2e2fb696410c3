"""Which of a glucose meter's records the gateway already has.

A meter numbers its records and keeps them (the patient's logbook), so each session asks only for those after
the last one stored ("report records >= n", RACP 01 03 01 n). The count advances only over records the gateway
has committed — a record held in memory or refused stops it there, so the next session asks for that record
again instead of skipping it for good.
"""

from __future__ import annotations

from drivers.delivery import Delivery
from drivers.glucose import decode_glucose
from drivers.measurement import DecodeError

RACP_REPORT_ALL = bytes([0x01, 0x01])
_SEQUENCE_MASK = 0xFFFF


def sequence_of(data: bytes) -> int | None:
    """A record's sequence number.

    Read from its place even when the rest does not decode, so a control-solution test or a meter fault does
    not make us ask for it forever.
    """
    try:
        return decode_glucose(data).sequence
    except DecodeError:
        return int.from_bytes(data[1:3], "little") if len(data) >= 3 else None


class SequenceTracker:
    """The highest sequence number up to which every record of a meter is stored (`last`), over one session."""

    def __init__(self, last: int | None = None) -> None:
        self.last = last  # the highest sequence number up to which every record is stored
        self._stopped = False  # a record in this session was not stored: nothing after it counts

    def request(self) -> bytes:
        """The RACP request for what we do not have yet."""
        if self.last is None:
            return RACP_REPORT_ALL
        # Operator ">=" (03), filter type 1 (sequence number), then the first sequence number we lack.
        return bytes([0x01, 0x03, 0x01]) + ((self.last + 1) & _SEQUENCE_MASK).to_bytes(2, "little")

    def delivered(self, data: bytes, outcome: Delivery) -> None:
        """Record what became of one record: `last` advances over stored records until the first one that is not."""
        if not outcome.device_may_forget:
            self._stopped = True
        if self._stopped:
            return
        sequence = sequence_of(data)
        if sequence is not None:
            self.last = max(sequence, self.last or 0)
