"""The gateway's one error root: every problem a technician can act on (configuration, keys, storage)
is a `GatewayError`, so the command line maps one type to one line on stderr and exit code 2."""

from __future__ import annotations

__all__ = ["GatewayError"]


class GatewayError(RuntimeError):
    """A problem with the kit's configuration, keys or stored data; the message is one actionable line."""
