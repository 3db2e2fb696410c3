"""The one error root of the central side: the CLI prints it as one line and exits with code 2."""

from __future__ import annotations


class CentralError(RuntimeError):
    """Something an operator must fix (a database that cannot be reached, a bad argument)."""
