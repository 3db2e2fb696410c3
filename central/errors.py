"""The one error root of the central tools: the CLI prints it as one line and exits with code 2."""


class CentralError(Exception):
    """One line the user can act on."""
