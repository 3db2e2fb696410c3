"""Omron standard-GATT cuffs (BP5250, BP7000/Evolv) (device-protocols.md §4.2 a).

Evidence: Stanford SpeziDevices (github:StanfordSpezi/SpeziDevices Sources/SpeziOmron): Device Information,
Current Time 0x1805, Battery and Blood Pressure services, measurements carry the Omron user slot as
User ID; derdilla/blood-pressure-monitor-fl BLUETOOTH.md and the export2garmin Omron manual: cuffs send
stored readings again, so the gateway must recognise a reading it already has. The proprietary EEPROM
family (HEM-7322T and others, omblepy) is not supported: writing its EEPROM is flagged dangerous.
"""

from __future__ import annotations

from drivers import uuids
from drivers.quirks import DeviceQuirks

BP_STANDARD = DeviceQuirks(
    name="omron-bp-standard", service=uuids.BLOOD_PRESSURE_SERVICE, measurement=uuids.BLOOD_PRESSURE_MEASUREMENT,
    time=uuids.CURRENT_TIME, resends_history=True, name_prefixes=("BP5250", "BP7000", "EVOLV"),
    evidence="SpeziDevices SpeziOmron; derdilla BLUETOOTH.md; export2garmin Omron_BLE.md",
)
QUIRKS = (BP_STANDARD,)
