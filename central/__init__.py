"""The central follow-up service: ingest workers, the database, FHIR output, the clinicians' plan tool,
the gateway CA (another deployable than the gateway; it shares only the wire models and topic names in `sync`)."""

from __future__ import annotations

from central.errors import CentralError

__all__ = ["CentralError"]
