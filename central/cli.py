"""The `dho-central` command: each room adds its subcommands (`add_commands(subparsers)`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from central.ca.commands import add_commands as add_ca_commands
from central.errors import CentralError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dho-central", description="The central follow-up service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_ca_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except CentralError as exc:
        print(f"dho-central: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
