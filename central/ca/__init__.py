"""Gateway certificates: the tenant CA, signing a gateway's CSR (CN = gateway id), renewal before
expiry, and revocation with a CRL the broker reads."""

from __future__ import annotations

from central.ca.authority import CAError, Issued, TenantCA

__all__ = ["CAError", "Issued", "TenantCA"]
