"""Readings -> FHIR R4 resources per the Personal Health Device IG. Pure: no I/O, no clock.

One reading gives one Observation per measured quantity the IG models separately: blood pressure is one
compound Observation (systolic, diastolic, mean components) plus a pulse Observation; an oximeter
reading is an SpO2 and a pulse Observation; weight, temperature and glucose one each. Every
Observation carries the IG's deduplication identifier, points at the measuring device (PhdDevice),
names the gateway (PhgDevice) in the gatewayDevice extension, refers to the patient only by pseudonym,
and carries the zone the gateway gave it as an interpretation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from central.fhir import codes
from central.fhir.codes import Code
from protocol import WireDevice, WireQuantity, WireReading

Resource = dict[str, Any]
_TENANT = re.compile(r"^[A-Za-z0-9-]+$")
_PSEUDONYM = re.compile(r"^[A-Za-z0-9.-]+$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
_UNIT_DISPLAY = {"/min": "/min", "%": "%", "mm[Hg]": "mmHg", "kg": "kg", "Cel": "°C", "mmol/L": "mmol/L"}


PROVISIONAL = "provisional"
_V3_DISPLAY = {"N": "Normal", "A": "Abnormal", "AA": "Critical abnormal", "L": "Low", "H": "High",
               "LL": "Critical low", "HH": "Critical high"}
_OFF_SCALE = {"above_measuring_range": (">", "Off scale high"), "below_measuring_range": ("<", "Off scale low")}


@dataclass(frozen=True)
class MappedObservation:
    """One FHIR Observation made from a reading: its id, the PHD IG de-duplication identifier, the MDC code
    (for search), the effective time and the validated resource.
    """

    id: str
    identifier: str
    code: str  # MDC decimal, for search
    effective: datetime
    resource: Resource


@functools.lru_cache(maxsize=65536)
def fhir_id(text: str) -> str:
    """A FHIR logical id ([A-Za-z0-9.-]{1,64}) from a device or gateway id."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


def device_id(device: WireDevice, tenant: str) -> str:
    """The PhdDevice's logical id: `phd-<tenant>.<MAC hex or serial>`. Per tenant: a kit moved to another
    municipality is that tenant's Device from then on, and two vendors' equal serials in two tenants
    never share a row."""
    return _scoped_id("phd", tenant, _hex(device.id) if _MAC.match(device.id) else device.id)


@functools.lru_cache(maxsize=65536)
def _scoped_id(prefix: str, tenant: str, local: str) -> str:
    readable = f"{prefix}-{tenant}.{local}"
    if _TENANT.match(tenant) and _PSEUDONYM.match(local) and len(readable) <= 64:
        return readable
    return f"{prefix}-sha256-" + hashlib.sha256(f"{tenant}\x00{local}".encode()).hexdigest()[:53]


@functools.lru_cache(maxsize=65536)
def _dedup_device(text: str) -> str:
    return _hex(text) if _MAC.match(text) else text


def gateway_device_id(gateway: str, tenant: str) -> str:
    """The PhgDevice's logical id, `phg-<tenant>.<gateway>` (per tenant, as device_id)."""
    return _scoped_id("phg", tenant, gateway)


def _hex(mac: str) -> str:
    return re.sub(r"[:-]", "", mac).upper()


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _quantity(q: WireQuantity) -> Resource:
    # FHIR decimals keep their precision (83.800 is not 83.8): the Decimal as sent, written by resource_json.
    value: Decimal = q.value
    return {"value": value, "unit": _UNIT_DISPLAY.get(q.unit, q.unit), "system": codes.UCUM, "code": q.unit}


def resource_json(resource: Resource) -> str:
    """A resource as JSON text, its Decimals written digit for digit (`83.800`, not `83.8`)."""
    marker = f"\u0000{uuid.uuid4().hex}:"

    def decimal(value: object) -> str:
        if isinstance(value, Decimal) and value.is_finite():
            return marker + str(value)
        raise TypeError(f"{type(value).__name__} is not JSON")

    text = json.dumps(resource, default=decimal, ensure_ascii=False)
    quoted = json.dumps(marker)[1:-1]
    return re.sub(f'"{re.escape(quoted)}([-+0-9.Ee]+)"', r"\1", text)


def parse_resource(text: str) -> Resource:
    """Stored JSON -> a resource whose decimals are Decimals (so resource_json writes them back unchanged)."""
    found: Resource = json.loads(text, parse_float=Decimal)
    return found


_STORED_HEAD = re.compile(r'^\{"resourceType": "[A-Za-z]+", "id": "[A-Za-z0-9.-]{1,64}", "meta": \{')


def served_json(text: str, last_updated: datetime) -> str:
    """A stored resource's JSON with `meta.lastUpdated`, as served. Resources this service wrote start
    `{"resourceType": …, "id": …, "meta": {`: the field goes in there, the rest of the text unchanged (no
    parsing, digits kept); anything else is parsed and written again."""
    head = _STORED_HEAD.match(text)
    if head is None or text.startswith('"lastUpdated"', head.end()):
        return resource_json(with_last_updated(text, last_updated))
    comma = "" if text.startswith("}", head.end()) else ", "
    return f'{text[:head.end()]}"lastUpdated": "{_instant(last_updated)}"{comma}{text[head.end():]}'


def with_last_updated(text: str, last_updated: datetime) -> Resource:
    """A stored resource with `meta.lastUpdated` (when the central service stored it)."""
    resource = parse_resource(text)
    resource.setdefault("meta", {})["lastUpdated"] = _instant(last_updated)
    return resource


def patient_id(tenant: str, pseudonym: str) -> str:
    """The Patient's logical id: a patient is (tenant, pseudonym), pseudonyms being issued per tenant.
    `<tenant>.<pseudonym>` when that is a FHIR id (the tenant without dots, 64 characters at most);
    otherwise `sha256-` and a digest of both (no dot, so the two forms never meet)."""
    readable = f"{tenant}.{pseudonym}"
    if _TENANT.match(tenant) and _PSEUDONYM.match(pseudonym) and len(readable) <= 64:
        return readable
    return "sha256-" + hashlib.sha256(f"{tenant}\x00{pseudonym}".encode()).hexdigest()[:57]


def patient_reference(tenant: str, pseudonym: str) -> Resource:
    """Observation.subject: the Patient's id and its identifier in the tenant's patient system."""
    return {"reference": f"Patient/{patient_id(tenant, pseudonym)}",
            "identifier": {"system": codes.patient_system(tenant), "value": pseudonym}}


def _absent(reason: str) -> Resource:
    code = "not-a-number" if "nan" in reason.lower() or "not a number" in reason.lower() else "error"
    return {"coding": [{"system": codes.DATA_ABSENT, "code": code}], "text": reason}


def dedup_identifier(reading: WireReading, tenant: str, code: Code) -> str:
    """The IG's `device-patient-type-timestamp` identifier. The timestamp is the device's own (as the IG
    asks), YYYYMMDDhhmmss.ss; a reading with no device time uses its gateway receive time."""
    stamp = reading.device_time or reading.received.astimezone(UTC).replace(tzinfo=None)
    device = _dedup_device(reading.device.id)
    centis = f"{stamp.microsecond // 10000:02d}"
    return (f"{device}-{reading.patient}-{codes.patient_system(tenant)}-{code.mdc}-"
            f"{stamp:%Y%m%d%H%M%S}.{centis}")


def _base(reading: WireReading, tenant: str, gateway: str, code: Code, text: str, obs_id: str,
          components: tuple[str, ...]) -> Resource:
    categories = [{"coding": [{"system": codes.PHD_CATEGORY, "code": "phd", "display": "PHD generated"}]}]
    if reading.type in codes.VITAL_SIGNS:
        categories.insert(0, {"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "vital-signs",
                                          "display": "Vital Signs"}]})
    resource: Resource = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation"]},
        "extension": [{"url": codes.GATEWAY_EXTENSION,
                       "valueReference": {"reference": f"Device/{gateway_device_id(gateway, tenant)}"}}],
        "identifier": [{"system": codes.DEDUP_SYSTEM, "value": dedup_identifier(reading, tenant, code)}],
        "status": "preliminary" if PROVISIONAL in reading.flags else "final",
        "category": categories,
        "code": code.concept(text),
        "subject": patient_reference(tenant, reading.patient),
        "effectiveDateTime": _instant(reading.effective),
        "device": {"reference": f"Device/{device_id(reading.device, tenant)}"},
        "interpretation": _interpretation(reading, components),
    }
    resource["extension"].append(_time_provenance(reading))
    if reading.flags:
        resource["note"] = [{"text": "device reported: " + ", ".join(reading.flags)}]
    return resource


def _interpretation(reading: WireReading, components: tuple[str, ...]) -> list[Resource]:
    """The zone the gateway gave the reading (local code), and what it says of this Observation's own values
    in HL7 v3 (_v3_code); a value the device reported beyond its measuring range is also off scale (> / <)."""
    zone = reading.assessment.zone
    coding: list[Resource] = [{"system": codes.ZONE_SYSTEM, "code": zone, "display": f"{zone} zone"}]
    v3 = _v3_code(reading, components)
    if v3 is not None:
        coding.append({"system": codes.INTERPRETATION, "code": v3, "display": _V3_DISPLAY[v3]})
    found = [{"coding": coding, "text": f"{zone} zone ({reading.assessment.profile} "
                                        f"v{reading.assessment.profile_version})"}]
    for flag, (code, display) in _OFF_SCALE.items():
        if flag in reading.flags:
            found.append({"coding": [{"system": codes.INTERPRETATION, "code": code, "display": display}]})
    return found


def _v3_code(reading: WireReading, components: tuple[str, ...]) -> str | None:
    """N for green; for yellow / red, from the rules that fired on this Observation's components: L / H
    (yellow) or LL / HH (red) when they all fired on the measured value in one direction, A / AA when
    the direction is not the value's (a trend: the change fired) or mixed, N when none fired on them (the
    reading's zone came from another component). No rules sent: A / AA by the zone. Unassessed: none."""
    zone = reading.assessment.zone
    if zone not in ("green", "yellow", "red"):
        return None
    if zone == "green":
        return "N"
    rules = reading.assessment.rules
    if not rules:
        return "AA" if zone == "red" else "A"
    mine = [r for r in rules if r.component in components]
    if not mine:
        return "N"
    worst = "red" if any(r.zone == "red" for r in mine) else "yellow"
    directions = set()
    for rule in (r for r in mine if r.zone == worst):
        measured = reading.components.get(rule.component)
        on_value = measured is not None and measured.value == rule.value
        directions.add(("H" if rule.op in (">", ">=") else "L") if on_value else "?")
    if len(directions) == 1 and directions != {"?"}:
        (direction,) = directions
        return direction * 2 if worst == "red" else direction
    return "AA" if worst == "red" else "A"


def _time_provenance(reading: WireReading) -> Resource:
    """Where the effective time came from (the device's synchronised clock, the gateway's receive time, ...)
    and the correction the gateway applied to the device's clock."""
    parts: list[Resource] = [{"url": "source", "valueCode": reading.time_source}]
    if reading.device_time is not None:
        parts.append({"url": "deviceTime", "valueString": reading.device_time.isoformat()})
    if reading.clock_correction_s is not None:
        parts.append({"url": "clockCorrection", "valueQuantity": {
            "value": Decimal(str(reading.clock_correction_s)), "unit": "s", "system": codes.UCUM, "code": "s"}})
    return {"url": codes.TIME_PROVENANCE_EXTENSION, "extension": parts}


def _numeric(reading: WireReading, tenant: str, gateway: str, code: Code, text: str, component: str,
             obs_id: str) -> MappedObservation:
    resource = _base(reading, tenant, gateway, code, text, obs_id, (component,))
    if component in reading.components:
        resource["valueQuantity"] = _quantity(reading.components[component])
    else:
        resource["dataAbsentReason"] = _absent(reading.absent.get(component, "not sent by the device"))
    return MappedObservation(obs_id, resource["identifier"][0]["value"], str(code.mdc), reading.effective, resource)


def _blood_pressure(reading: WireReading, tenant: str, gateway: str) -> MappedObservation:
    obs_id = str(reading.id)
    resource = _base(reading, tenant, gateway, codes.BP_PANEL, "Blood pressure", obs_id,
                     ("systolic", "diastolic", "mean"))
    resource["meta"] = {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCompoundNumericObservation"]}
    components = []
    for name, code, text in (("systolic", codes.BP_SYSTOLIC, "Systolic blood pressure"),
                             ("diastolic", codes.BP_DIASTOLIC, "Diastolic blood pressure"),
                             ("mean", codes.BP_MEAN, "Mean blood pressure")):
        component: Resource = {"code": code.concept(text)}
        if name in reading.components:
            component["valueQuantity"] = _quantity(reading.components[name])
        else:
            component["dataAbsentReason"] = _absent(reading.absent.get(name, "not sent by the device"))
        components.append(component)
    resource["component"] = components
    return MappedObservation(obs_id, resource["identifier"][0]["value"], str(codes.BP_PANEL.mdc),
                             reading.effective, resource)


def _bp_status(reading: WireReading, tenant: str, gateway: str) -> MappedObservation:
    """What the cuff flagged (body movement, a loose cuff, an irregular pulse, ...), coded: one component
    per status bit set, `valueBoolean` true (the PHD IG's BITS mapping); no zone of its own."""
    obs_id = _derived_id(reading, "measurement-status")
    resource = _base(reading, tenant, gateway, codes.BP_STATUS, "Blood pressure measurement status", obs_id, ())
    resource["meta"] = {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdBitsEnumerationObservation"]}
    resource["category"] = [c for c in resource["category"] if c["coding"][0]["code"] == "phd"]
    del resource["interpretation"]
    resource["component"] = [
        {"code": {"coding": [{"system": codes.ASN1_TO_HL7, "code": f"{codes.BP_STATUS.mdc}.{bit}",
                              "display": display}]},
         "valueBoolean": True}
        for flag, (bit, display) in sorted(codes.BP_STATUS_BITS.items(), key=lambda item: item[1][0])
        if flag in reading.flags
    ]
    return MappedObservation(obs_id, resource["identifier"][0]["value"], str(codes.BP_STATUS.mdc),
                             reading.effective, resource)


def _derived_id(reading: WireReading, what: str) -> str:
    return str(uuid.uuid5(reading.id, what))


def observations(reading: WireReading, *, tenant: str, gateway: str) -> list[MappedObservation]:
    """Every Observation the IG makes of this reading (ids derived from the reading id, stable). The
    patient's questionnaire answers are no device measurement: kept as the reading, no PHD Observation
    (a FHIR QuestionnaireResponse for them is not mapped yet)."""
    if reading.type == "questionnaire":
        return []
    if reading.type == "blood_pressure":
        found = [_blood_pressure(reading, tenant, gateway)]
        if "pulse" in reading.components or "pulse" in reading.absent:
            found.append(_numeric(reading, tenant, gateway, codes.PULSE_CUFF, "Pulse rate", "pulse",
                                  _derived_id(reading, "pulse")))
        if any(flag in codes.BP_STATUS_BITS for flag in reading.flags):
            found.append(_bp_status(reading, tenant, gateway))
        return found
    if reading.type == "spo2":
        found = [_numeric(reading, tenant, gateway, codes.SPO2, "Oxygen saturation", "spo2", str(reading.id))]
        if "pulse" in reading.components or "pulse" in reading.absent:
            found.append(_numeric(reading, tenant, gateway, codes.PULSE_OXIMETER, "Pulse rate", "pulse",
                                  _derived_id(reading, "pulse")))
        return found
    single = {
        "body_weight": (codes.BODY_WEIGHT, "Body weight", "weight"),
        "body_temperature": (codes.BODY_TEMPERATURE, "Body temperature", "temperature"),
        "glucose": (codes.GLUCOSE, "Glucose, capillary whole blood", "glucose"),
    }
    code, text, component = single[reading.type]
    return [_numeric(reading, tenant, gateway, code, text, component, str(reading.id))]


def _mdc(pair: tuple[int, str]) -> Resource:
    return {"coding": [{"system": codes.MDC, "code": str(pair[0]), "display": pair[1]}]}


def device_resource(device: WireDevice, reading_type: str, *, tenant: str) -> Resource:
    """The PhdDevice: the measuring device, identified by its Bluetooth address or its serial."""
    identifiers: list[Resource] = []
    if _MAC.match(device.id):
        identifiers.append({
            "type": {"coding": [{"system": codes.DEVICE_IDENTIFIER_TYPES, "code": "BTMAC"}]},
            "system": codes.BTMAC_SYSTEM,
            "value": "-".join(_hex(device.id)[i:i + 2] for i in range(0, 12, 2)),
        })
    else:
        identifiers.append({"system": codes.SERIAL_SYSTEM, "value": device.id})
    resource: Resource = {
        "resourceType": "Device",
        "id": device_id(device, tenant),
        "meta": {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdDevice"]},
        "identifier": identifiers,
        "type": _mdc(codes.PHD_TYPE),
        "specialization": [{"systemType": _mdc(codes.SPECIALIZATION[reading_type])}],
    }
    if device.model:
        resource["modelNumber"] = device.model
    if device.serial:
        resource["serialNumber"] = device.serial
    if device.firmware:
        resource["version"] = [{"type": _mdc(codes.FIRMWARE_VERSION), "value": device.firmware}]
    return resource


def gateway_resource(gateway: str, software_version: str | None = None, *, tenant: str) -> Resource:
    """The PhgDevice: the home gateway that received the readings."""
    resource: Resource = {
        "resourceType": "Device",
        "id": gateway_device_id(gateway, tenant),
        "meta": {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhgDevice"]},
        "identifier": [{"system": codes.GATEWAY_SYSTEM, "value": gateway}],
        "type": _mdc(codes.PHG_TYPE),
        "manufacturer": "dho-gateway",
    }
    if software_version:
        resource["version"] = [{"value": software_version}]
    return resource
