"""`GET /fhir/metadata`: the CapabilityStatement, listing exactly what this server does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

PHD_PROFILES = [
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation",
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCompoundNumericObservation",
]
_SEARCH = "http://hl7.org/fhir/SearchParameter/"
OBSERVATION_SEARCH = [
    ("patient", "reference", "Observation-patient",
     "Patient/<tenant>.<pseudonym> (or the pseudonym alone), always within the token's tenant; "
     "patient:identifier=urn:dho:fhir:tenant:<tenant>:patient|<pseudonym>"),
    ("subject", "reference", "Observation-subject", "as patient"),
    ("code", "token", "clinical-code", "[system]|code: MDC (urn:iso:std:iso:11073:10101) or LOINC"),
    ("date", "date", "clinical-date", "prefixes eq ge gt le lt sa eb; no offset: Europe/Oslo"),
    ("identifier", "token", "clinical-identifier", "the PHD IG deduplication identifier"),
    ("_lastUpdated", "date", "Resource-lastUpdated", "when the central service stored it"),
]


def capability_statement(base: str, started: datetime) -> dict[str, Any]:
    """The server's CapabilityStatement (FHIR R4 4.0.1)."""
    search_params = [
        {"name": name, "definition": _SEARCH + definition, "type": kind, "documentation": doc}
        for name, kind, definition, doc in OBSERVATION_SEARCH
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started.isoformat(timespec="seconds"),
        "publisher": "dho-central",
        "kind": "instance",
        "software": {"name": "dho-central"},
        "implementation": {"description": "dho-central: home measurements (PHD IG), read-only", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Every request but /metadata needs an OAuth 2.0 access token (Bearer or DPoP, "
                             "RFC 9449) with SMART system scopes; results are scoped by the token's tenant. "
                             "_count (0 to 1000; 0: total only), _sort (date, -date); paging by the `next` "
                             "link's opaque cursor. Unsupported parameters are refused under "
                             "`Prefer: handling=strict`, otherwise ignored and left out of the self link.",
            "security": {
                "cors": False,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"}]}],
                "description": "OAuth 2.0 access tokens (JWT) of the configured issuer; scopes "
                               "system/Observation.read|rs, system/Device.read|r",
            },
            "resource": [
                {"type": "Observation", "supportedProfile": PHD_PROFILES,
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": search_params},
                {"type": "Device", "supportedProfile": [
                    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdDevice",
                    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhgDevice"],
                 "interaction": [{"code": "read"}]},
            ],
            "operation": [{"name": "export",
                           "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                           "documentation": "system level, the token's tenant only; Prefer: respond-async; "
                                            "_type (Observation, Device), _since; NDJSON"}],
        }],
    }
