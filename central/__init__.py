"""The central side: the plan tool for clinicians (and, in later issues, ingest, store, FHIR, the CA)."""
