"""Topic names of wire protocol v1 (docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "dho/v1"


@dataclass(frozen=True)
class Topics:
    """The v1 topics of one gateway: `dho/v1/{tenant}/{gateway}/up/...` (gateway to central) and `.../down/...`.

    Every v1 topic is QoS 1. The broker's ACL lets a gateway (its certificate's CN) publish only under its
    own tenant and id (docs/protocol.md).
    """

    tenant: str
    gateway: str

    @property
    def base(self) -> str:
        """`dho/v1/{tenant}/{gateway}`: the prefix of every topic of this gateway."""
        return f"{PREFIX}/{self.tenant}/{self.gateway}"

    @property
    def readings(self) -> str:
        """Upstream `ReadingBatch`es."""
        return f"{self.base}/up/readings"

    @property
    def events(self) -> str:
        """Upstream `Event`s (never patient data or values)."""
        return f"{self.base}/up/events"

    @property
    def status(self) -> str:
        """Upstream `Status`, retained; the broker publishes the Last Will here when the connection is lost."""
        return f"{self.base}/up/status"

    @property
    def proposal(self) -> str:
        """Upstream `BaselineProposal`, retained: a baseline for the clinician to review."""
        return f"{self.base}/up/proposal"

    @property
    def ack(self) -> str:
        """Downstream `Ack`s: the ids the central service has durably stored."""
        return f"{self.base}/down/ack"

    @property
    def config(self) -> str:
        """Downstream signed `ConfigMessage`s (plan, trust store), retained."""
        return f"{self.base}/down/config"


def parse_up_topic(topic: str) -> tuple[str, str, str]:
    """`dho/v1/{t}/{g}/up/{what}` -> (tenant, gateway, what); ValueError for anything else."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != PREFIX or parts[4] != "up":
        raise ValueError(f"not a v1 upstream topic: {topic!r}")
    return parts[2], parts[3], parts[5]
