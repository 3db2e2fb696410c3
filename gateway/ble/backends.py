"""Which bleak backends the gateway's radio work goes through (BlueZ on the box, bumble in simulations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner


@dataclass
class BleBackends:
    """bleak backend classes and their keyword arguments; None: the platform's (BlueZ on the gateway)."""

    scanner: type[BaseBleakScanner] | None = None  # None: the platform's (BlueZ on the gateway)
    client: type[BaseBleakClient] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for both
