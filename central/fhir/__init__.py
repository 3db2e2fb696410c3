"""FHIR R4 output per the Personal Health Device IG: the mapping from readings (pure), the read-only
search API, the NDJSON bulk export."""

from __future__ import annotations

from central.fhir.mapping import (
    MappedObservation,
    dedup_identifier,
    device_id,
    device_resource,
    gateway_device_id,
    gateway_resource,
    observations,
    parse_resource,
    patient_id,
    patient_reference,
    resource_json,
)

__all__ = [
    "MappedObservation",
    "dedup_identifier",
    "device_id",
    "device_resource",
    "gateway_device_id",
    "gateway_resource",
    "observations",
    "parse_resource",
    "patient_id",
    "patient_reference",
    "resource_json",
]
