"""Every device the gateway knows how to talk to.

The standard one per measurement kind, and the named variants and vendor quirks a device's provisioning entry
may ask for (`profile = "..."`).

The registry imports the vendor files; the vendor files import only `drivers.quirks`: no circle.
"""

from __future__ import annotations

from drivers import uuids
from drivers.quirks import DeviceQuirks
from drivers.vendors import and_medical, omron, xiaomi

STANDARD: dict[str, DeviceQuirks] = {
    "blood_pressure": DeviceQuirks("standard blood pressure", uuids.BLOOD_PRESSURE_SERVICE,
                                   uuids.BLOOD_PRESSURE_MEASUREMENT),
    "spo2": DeviceQuirks("standard pulse oximeter", uuids.PULSE_OXIMETER_SERVICE, uuids.PLX_SPOT_CHECK,
                         record_access=True),
    "body_weight": DeviceQuirks("standard scale", uuids.WEIGHT_SCALE_SERVICE, uuids.WEIGHT_MEASUREMENT),
    "body_temperature": DeviceQuirks("standard thermometer", uuids.HEALTH_THERMOMETER_SERVICE,
                                     uuids.TEMPERATURE_MEASUREMENT),
    # Glucose meters keep their memory (the patient's logbook): fetch by sequence number, delete nothing.
    "glucose": DeviceQuirks("standard glucose meter", uuids.GLUCOSE_SERVICE, uuids.GLUCOSE_MEASUREMENT,
                            record_access=True, delete_after_transfer=False, sequence_numbers=True),
}

# Standard variants chosen by name in the device's provisioning entry.
PLX_CONTINUOUS = DeviceQuirks("plx-continuous", uuids.PULSE_OXIMETER_SERVICE, uuids.PLX_CONTINUOUS,
                              continuous=True)

NAMED: dict[str, DeviceQuirks] = {
    q.name: q for q in (PLX_CONTINUOUS, *and_medical.QUIRKS, *omron.QUIRKS, *xiaomi.QUIRKS)
}


def named_quirks() -> dict[str, DeviceQuirks]:
    """The variants and vendor quirks a provisioning entry may name."""
    return dict(NAMED)


def quirks_for(kind: str, name: str | None) -> DeviceQuirks:
    """The quirks of a provisioned device: the named ones, or the standard ones for its kind."""
    if name is not None:
        if name not in NAMED:
            raise KeyError(f"no device profile {name!r} (known: {', '.join(sorted(NAMED))})")
        return NAMED[name]
    return STANDARD[kind]
