"""A kit's life as commands: provision, pair, check (the hand-over check), reissue (docs/kit.md)."""

from __future__ import annotations

from gateway.kit.commands import add_commands, run

__all__ = ["add_commands", "run"]
