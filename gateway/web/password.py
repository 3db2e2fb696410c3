"""`python -m gateway.web.password`: asks for the technician password twice and prints the line for
the configuration's [web] section (`dho-gateway kit provision --technician-password` writes it for you).
The password itself is never stored or shown."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

from gateway.errors import GatewayError
from gateway.web.security import hash_password

MIN_LENGTH = 10


class PasswordRefused(GatewayError):
    """The password typed at the prompt cannot be used (too short, the two differ, no answer)."""


def ask_new_password(ask: Callable[[str], str] = getpass.getpass) -> str:
    """Ask twice (without echo on a terminal); the password, or PasswordRefused with one line to act on.
    Ctrl-D or Ctrl-C at the prompt is a refusal too, never a traceback."""
    try:
        first = ask("technician password: ")
        if len(first) < MIN_LENGTH:
            raise PasswordRefused(f"the technician password needs at least {MIN_LENGTH} characters; nothing changed")
        if ask("again: ") != first:
            raise PasswordRefused("the two technician passwords did not match; nothing changed")
    except (EOFError, KeyboardInterrupt):
        raise PasswordRefused("no technician password given at the prompt; nothing changed") from None
    return first


def main() -> int:
    try:
        password = ask_new_password()
    except PasswordRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f'technician_password_hash = "{hash_password(password)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
