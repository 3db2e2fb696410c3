"""`dho-central`: the central side's command line. Each room adds its own commands
(`central/<room>/commands.py` provides `add_commands(subparsers)`); a CentralError is one line on
stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from central.ca import commands as ca_commands
from central.errors import CentralError
from central.fhir import commands as fhir_commands
from central.ingest import commands as ingest_commands
from central.plans import commands as plans_commands
from central.store import commands as store_commands
from central.worklist import commands as worklist_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dho-central",
        description="The central follow-up service: ingest workers (MQTT 5 consumer group), the database "
        "(SQLite or PostgreSQL), the gateway registry, FHIR R4 output, the clinicians' signed plans, "
        "the gateway certificate authority, the nurses' worklist.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for room in (ingest_commands, store_commands, fhir_commands, plans_commands, ca_commands, worklist_commands):
        room.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except CentralError as exc:
        print(f"dho-central: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
