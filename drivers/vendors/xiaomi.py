"""Xiaomi Mi scales: the weight is in advertisement service data, no connection (device-protocols.md §4.5).

Evidence: theengs decoder (github:theengs/decoder src/devices/XMTZC04HMKG_json.h, XMTZC05HMKG_json.h) and
openScale MiScaleHandler.kt: 0x181D frames of 10 bytes (Mi Smart Scale 1/2), 0x181B frames of 13 bytes
(Body Composition Scale), a "stabilised" and a "weight removed" bit, weight / 200 kg or / 100 lb, and an
embedded time stamp that openScale uses to drop repeats. No user id: provision such a scale only for a
patient who lives alone, or who is the only one using it.
"""

from __future__ import annotations

from drivers.quirks import DeviceQuirks
from drivers.weight import MI_BODY_COMPOSITION_SERVICE_DATA, MI_SCALE_SERVICE_DATA

MI_SCALE = DeviceQuirks(
    name="xiaomi-mi-scale", service=MI_SCALE_SERVICE_DATA, measurement=MI_SCALE_SERVICE_DATA, time=None,
    advertised=True, name_prefixes=("MI_SCALE", "MI SCALE2"), evidence="theengs XMTZC04HM; openScale MiScaleHandler",
)
MI_BODY_COMPOSITION = DeviceQuirks(
    name="xiaomi-mi-body-composition", service=MI_BODY_COMPOSITION_SERVICE_DATA,
    measurement=MI_BODY_COMPOSITION_SERVICE_DATA, time=None, advertised=True, name_prefixes=("MIBCS", "MIBFS"),
    evidence="theengs XMTZC05HM; openScale MiScaleHandler",
)
QUIRKS = (MI_SCALE, MI_BODY_COMPOSITION)
