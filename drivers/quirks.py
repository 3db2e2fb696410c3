"""How to talk to a kind of device (its quirks).

Which characteristic carries measurements, how its clock is set, whether stored records are fetched through
the Record Access Control Point.

Not to be confused with zoning profiles (thresholds, `zoning/profiles/`): these say how a device
talks, never how a value is judged. Vendor quirks live in `drivers/vendors/`, one small file per
vendor; `drivers/known_devices.py` puts them together by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers import uuids


@dataclass(frozen=True)
class DeviceQuirks:
    """How to talk to one kind of device.

    Its service and measurement characteristic, how its clock is set, whether stored records come through the
    RACP, and the evidence for each quirk.
    """

    name: str
    service: str
    measurement: str
    time: str | None = uuids.CURRENT_TIME  # where the clock is written on every connection; None: never
    record_access: bool = False  # stored records via RACP (after they are stored, never before)
    delete_after_transfer: bool = True  # with record_access: delete the records on the device once stored
    sequence_numbers: bool = False  # with record_access: ask only for records after the last one we have
    resends_history: bool = False  # sends its whole memory on every connection (identity must be stable)
    name_prefixes: tuple[str, ...] = ()
    evidence: str = "Bluetooth SIG service specification"
    advertised: bool = False  # the value comes in advertisement service data; never connected
    requires_pairing: bool = False  # encrypt with the bond (pair first when there is none) before anything
    continuous: bool = False  # a stream while the finger is in: one reading per session (continuous_oximetry.py)
