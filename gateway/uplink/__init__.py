"""The uplink: drain the sealed outbox to the central service over MQTT, delete an entry only when the
central has acknowledged it, publish the status and events, and hand signed plans to the plans room.

Offers `Uplink` (the drain), `AckListener` and `StatusFacts` (what the gateway adds to its status), and
`stay_connected` (the reconnect loop around one MQTT session, with the one `protocol.Backoff`).
"""

from gateway.uplink.connection import Session, stay_connected
from gateway.uplink.uplink import AckListener, ConfigListener, StatusFacts, Uplink

__all__ = ["AckListener", "ConfigListener", "Session", "StatusFacts", "Uplink", "stay_connected"]
