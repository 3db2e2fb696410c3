"""`python -m gateway.web.password`: asks for the technician password twice and prints the line for
the configuration's [web] section. The password itself is never stored or shown."""

from __future__ import annotations

import getpass
import sys

from gateway.web.security import hash_password

MIN_LENGTH = 10


def main() -> int:
    first = getpass.getpass("technician password: ")
    if len(first) < MIN_LENGTH:
        print(f"at least {MIN_LENGTH} characters, please", file=sys.stderr)
        return 2
    if getpass.getpass("again: ") != first:
        print("the two did not match", file=sys.stderr)
        return 2
    print(f'technician_password_hash = "{hash_password(first)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
