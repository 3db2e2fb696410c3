"""How to talk to a kind of device: which characteristic carries measurements, how its clock is set,
whether stored records are fetched through the Record Access Control Point. Vendor quirks live in
`drivers/vendors/`, one small file per vendor."""

from __future__ import annotations

from dataclasses import dataclass

from drivers import uuids


@dataclass(frozen=True)
class DeviceProfile:
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
    continuous: bool = False  # a stream while the finger is in: one reading per session, the last good value


STANDARD: dict[str, DeviceProfile] = {
    "blood_pressure": DeviceProfile("standard blood pressure", uuids.BLOOD_PRESSURE_SERVICE,
                                    uuids.BLOOD_PRESSURE_MEASUREMENT),
    "spo2": DeviceProfile("standard pulse oximeter", uuids.PULSE_OXIMETER_SERVICE, uuids.PLX_SPOT_CHECK,
                          record_access=True),
    "body_weight": DeviceProfile("standard scale", uuids.WEIGHT_SCALE_SERVICE, uuids.WEIGHT_MEASUREMENT),
    "body_temperature": DeviceProfile("standard thermometer", uuids.HEALTH_THERMOMETER_SERVICE,
                                      uuids.TEMPERATURE_MEASUREMENT),
    # Glucose meters keep their memory (the patient's logbook): fetch by sequence number, delete nothing.
    "glucose": DeviceProfile("standard glucose meter", uuids.GLUCOSE_SERVICE, uuids.GLUCOSE_MEASUREMENT,
                             record_access=True, delete_after_transfer=False, sequence_numbers=True),
}


# Standard variants chosen by name in the device's provisioning entry.
PLX_CONTINUOUS = DeviceProfile("plx-continuous", uuids.PULSE_OXIMETER_SERVICE, uuids.PLX_CONTINUOUS,
                               continuous=True)


def vendor_profiles() -> dict[str, DeviceProfile]:
    from drivers.vendors import and_medical, omron, xiaomi

    return {p.name: p for p in (PLX_CONTINUOUS, *and_medical.PROFILES, *omron.PROFILES, *xiaomi.PROFILES)}


def profile_for(kind: str, vendor: str | None) -> DeviceProfile:
    if vendor is not None:
        known = vendor_profiles()
        if vendor not in known:
            raise KeyError(f"no device profile {vendor!r} (known: {', '.join(sorted(known))})")
        return known[vendor]
    return STANDARD[kind]
