"""The patient's page and the technician's page, served by the gateway itself (FastAPI on uvicorn, in
the gateway's asyncio loop), and the JSON API behind them. The pages read the gateway through its own
interfaces (`GatewayPort`): never its SQLite files or keys."""

from __future__ import annotations

from gateway.web.app import create_app
from gateway.web.live import LiveState
from gateway.web.password import PasswordRefused, ask_new_password
from gateway.web.ports import GatewayPort, ServiceFacts
from gateway.web.security import hash_password, verify_password
from gateway.web.server import PagesServer

__all__ = [
    "GatewayPort",
    "LiveState",
    "PagesServer",
    "PasswordRefused",
    "ServiceFacts",
    "ask_new_password",
    "create_app",
    "hash_password",
    "verify_password",
]
