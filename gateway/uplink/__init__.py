"""The uplink: drain the sealed outbox to the central service over MQTT, delete an entry only when the
central has acknowledged it, publish the status and events, and hand signed plans to the plans room.

Offers `Uplink` (the drain), `AckListener` and `StatusFacts` (what the gateway adds to its status), and
`stay_connected` (the reconnect loop around one MQTT session, with the one `protocol.Backoff`), and
`refusal_fault` / `read_refusal_fault` (a refusal by the central service as a status fault, protocol 1.1).
"""

from gateway.uplink.connection import Session, stay_connected
from gateway.uplink.uplink import (
    CENTRAL_REFUSAL_FILE,
    AckListener,
    ConfigListener,
    StatusFacts,
    Uplink,
    read_refusal_fault,
    refusal_fault,
)

__all__ = [
    "CENTRAL_REFUSAL_FILE",
    "AckListener",
    "ConfigListener",
    "Session",
    "StatusFacts",
    "Uplink",
    "read_refusal_fault",
    "refusal_fault",
    "stay_connected",
]
