"""A&D Medical cuffs and thermometers (device-protocols.md §4.1).

Evidence: obniz parts UA651BLE/UA1200BLE (github:obniz/obniz src/parts/Ble/UA651BLE/index.ts reads the
Date Time 0x2A08 inside the Blood Pressure service; UA1200BLE writes CTS 0x2A2B), an A&D SDK quoted by
a third-party integration ("time must be written on every connection, within ~5 s after encryption"),
and obniz's README: on connect the cuff sends only readings not sent before, then disconnects. Pairing is
needed; the cuff keeps one bond ("ERR 10 ... bond key mismatch" when it was paired elsewhere).
"""

from __future__ import annotations

from drivers import uuids
from drivers.quirks import DeviceQuirks

UA_651BLE = DeviceQuirks(
    name="and-ua-651ble", service=uuids.BLOOD_PRESSURE_SERVICE, measurement=uuids.BLOOD_PRESSURE_MEASUREMENT,
    time=uuids.DATE_TIME, name_prefixes=("A&D_UA-651BLE_", "A&D_UA-656BLE"), requires_pairing=True,
    evidence="obniz UA651BLE (0x2A08 in the BP service); A&D SDK via a third-party integration",
)
UA_1200BLE = DeviceQuirks(
    name="and-ua-1200ble", service=uuids.BLOOD_PRESSURE_SERVICE, measurement=uuids.BLOOD_PRESSURE_MEASUREMENT,
    time=uuids.CURRENT_TIME, name_prefixes=("UA-1200BLE_",), requires_pairing=True,
    evidence="obniz UA1200BLE (writes CTS 0x2A2B; its 9-byte write with Sunday = 0 is a bug we do not copy)",
)
QUIRKS = (UA_651BLE, UA_1200BLE)
