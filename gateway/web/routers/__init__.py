"""The pages' routes, one router per audience: the patient's pages, the technician's pages, the login
(and the session's language), and the JSON API behind both. `gateway.web.create_app` assembles them."""

from __future__ import annotations

from gateway.web.routers import api, login, patient, technician

__all__ = ["api", "login", "patient", "technician"]
