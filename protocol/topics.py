"""Topic names of wire protocol v1 (docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "dho/v1"


@dataclass(frozen=True)
class Topics:
    tenant: str
    gateway: str

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.tenant}/{self.gateway}"

    @property
    def readings(self) -> str:
        return f"{self.base}/up/readings"

    @property
    def events(self) -> str:
        return f"{self.base}/up/events"

    @property
    def status(self) -> str:
        return f"{self.base}/up/status"

    @property
    def proposal(self) -> str:
        return f"{self.base}/up/proposal"

    @property
    def ack(self) -> str:
        return f"{self.base}/down/ack"

    @property
    def config(self) -> str:
        return f"{self.base}/down/config"


def parse_up_topic(topic: str) -> tuple[str, str, str]:
    """`dho/v1/{t}/{g}/up/{what}` -> (tenant, gateway, what); ValueError for anything else."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != PREFIX or parts[4] != "up":
        raise ValueError(f"not a v1 upstream topic: {topic!r}")
    return parts[2], parts[3], parts[5]
