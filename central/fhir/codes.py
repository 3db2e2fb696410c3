"""Codes of the HL7 Personal Health Device IG (v2.0.0, FHIR R4): MDC (IEEE 11073-10101 as 32-bit
decimals), the LOINC codes of the FHIR vital-signs profiles, UCUM units. Source:
shared/reference/device-protocols.md §5 (from the IG's examples)."""

from __future__ import annotations

from dataclasses import dataclass

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
DEDUP_SYSTEM = "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdBaseObservation"
GATEWAY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
BTMAC_SYSTEM = "http://hl7.org/fhir/sid/eui-48/bluetooth"
DEVICE_IDENTIFIER_TYPES = "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# Local code systems: the zone a reading was given on the box, serials and patient pseudonyms.
ZONE_SYSTEM = "urn:dho:fhir:zone"
SERIAL_SYSTEM = "urn:dho:fhir:device-serial"
GATEWAY_SYSTEM = "urn:dho:fhir:gateway"
# HL7 v3 ObservationInterpretation (N, A, AA, L, H, LL, HH), beside the local zone code.
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# How the effective time was obtained (the gateway's time provenance), a local code system.
TIME_PROVENANCE_EXTENSION = "urn:dho:fhir:StructureDefinition:time-provenance"


def patient_system(tenant: str) -> str:
    """Pseudonyms are issued per tenant (municipality or health trust)."""
    return f"urn:dho:fhir:tenant:{tenant}:patient"


@dataclass(frozen=True)
class Code:
    mdc: int
    reference: str
    loinc: str | None = None
    loinc_display: str | None = None

    def concept(self, text: str) -> dict[str, object]:
        coding: list[dict[str, object]] = [{"system": MDC, "code": str(self.mdc), "display": self.reference}]
        if self.loinc:
            coding.append({"system": LOINC, "code": self.loinc, "display": self.loinc_display or text})
        return {"coding": coding, "text": text}


BP_PANEL = Code(150020, "MDC_PRESS_BLD_NONINV", "85354-9", "Blood pressure panel with all children optional")
BP_SYSTOLIC = Code(150021, "MDC_PRESS_BLD_NONINV_SYS", "8480-6", "Systolic blood pressure")
BP_DIASTOLIC = Code(150022, "MDC_PRESS_BLD_NONINV_DIA", "8462-4", "Diastolic blood pressure")
BP_MEAN = Code(150023, "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "Mean blood pressure")
PULSE_CUFF = Code(149546, "MDC_PULS_RATE_NON_INV", "8867-4", "Heart rate")
SPO2 = Code(150456, "MDC_PULS_OXIM_SAT_O2", "2708-6", "Oxygen saturation in Arterial blood")
PULSE_OXIMETER = Code(149530, "MDC_PULS_OXIM_PULS_RATE", "8867-4", "Heart rate")
BODY_WEIGHT = Code(188736, "MDC_MASS_BODY_ACTUAL", "29463-7", "Body weight")
BODY_TEMPERATURE = Code(150364, "MDC_TEMP_BODY", "8310-5", "Body temperature")
# Not a vital sign (no vital-signs category), but a LOINC code lets a hospital system find it: the meters
# report mmol/L from capillary whole blood, so 14743-9 "Glucose [Moles/volume] in Capillary blood by
# Glucometer" (41653-7 is the mass/volume one).
GLUCOSE = Code(160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "14743-9",
               "Glucose [Moles/volume] in Capillary blood by Glucometer")
# The cuff's measurement status (IEEE 11073-10407 BITS, as the GATT Blood Pressure Measurement Status):
# a PhdBitsEnumerationObservation whose components are the bits set, coded `8410608.<bit>` in the IG's
# ASN1ToHL7 code system (shared/reference/device-protocols.md §5.1).
BP_STATUS = Code(8410608, "MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS")
ASN1_TO_HL7 = "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7"
BP_STATUS_BITS = {
    "body_movement": (0, "body-movement-detected"),
    "cuff_too_loose": (1, "cuff-too-loose"),
    "irregular_pulse": (2, "irregular-pulse-detected"),
    "pulse_above_range": (3, "pulse-rate-exceeds-upper-limit"),
    "pulse_below_range": (4, "pulse-rate-less-than-lower-limit"),
    "improper_position": (5, "improper-measurement-position"),
}
# Every Observation.code this server produces (search by `code` translates LOINC through this list).
OBSERVATION_CODES = (BP_PANEL, PULSE_CUFF, SPO2, PULSE_OXIMETER, BODY_WEIGHT, BODY_TEMPERATURE, GLUCOSE)

# PhdDevice specialisations (Device.specialization.systemType) by reading type.
SPECIALIZATION = {
    "spo2": (528388, "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    "blood_pressure": (528391, "MDC_DEV_SPEC_PROFILE_BPM"),
    "body_temperature": (528392, "MDC_DEV_SPEC_PROFILE_TEMP"),
    "body_weight": (528399, "MDC_DEV_SPEC_PROFILE_SCALE"),
    "glucose": (528401, "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
}
PHD_TYPE = (65573, "MDC_MOC_VMS_MDS_SIMP")
PHG_TYPE = (531981, "MDC_MOC_VMS_MDS_AHD")
FIRMWARE_VERSION = (531976, "MDC_ID_PROD_SPEC_FW")
VITAL_SIGNS = frozenset({"spo2", "blood_pressure", "body_temperature", "body_weight"})
