"""`dho-central ingest`: run the consumer group's workers on this machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from central.errors import CentralError
from central.ingest.pool import supervise
from central.ingest.worker import IngestWorker
from central.store import add_db_argument, open_database
from protocol import BrokerSettings

log = logging.getLogger(__name__)


def add_commands(subparsers: Any) -> None:
    ingest = subparsers.add_parser(
        "ingest", help="run ingest workers (MQTT 5 shared subscription -> database -> ack)",
        description="Stateless workers share every gateway's upstream messages through an MQTT 5 shared "
        "subscription ($share/GROUP/dho/v1/+/+/up/...) on persistent sessions; each stores, commits, then "
        "acks. Run the same command on more machines (another --name) to add workers to the group.",
    )
    ingest.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes here (default 1)")
    ingest.add_argument("--group", default="dho-central", help="shared-subscription group (default dho-central)")
    ingest.add_argument("--name", default=f"dho-central-{socket.gethostname()}",
                        help="client id prefix; worker i is NAME-i, stable so its session survives a restart")
    ingest.add_argument("--index", type=int, default=None, help=argparse.SUPPRESS)
    ingest.add_argument("--session-expiry", type=int, default=24 * 3600, metavar="S",
                        help="seconds the broker keeps a stopped worker's session and messages (default 1 day)")
    ingest.add_argument("--broker", default="127.0.0.1:8883", metavar="HOST:PORT")
    ingest.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    ingest.add_argument("--insecure-dev", action="store_true", help="plain TCP without TLS (development only)")
    ingest.add_argument("--ca-file", type=Path)
    ingest.add_argument("--cert-file", type=Path, help="the workers' client certificate (CN dho-central)")
    ingest.add_argument("--key-file", type=Path)
    add_db_argument(ingest)
    ingest.set_defaults(run=_ingest)


def broker_settings(args: argparse.Namespace) -> BrokerSettings:
    host, _, port = args.broker.rpartition(":")
    try:
        return BrokerSettings(
            host=host or "127.0.0.1", port=int(port), protocol=args.protocol, insecure_dev=args.insecure_dev,
            ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file,
        )
    except ValueError as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise CentralError(f"--broker {args.broker}: {detail}") from None


def _worker_argv(args: argparse.Namespace, index: int) -> list[str]:
    argv = ["ingest", "--workers", "1", "--index", str(index), "--group", args.group, "--name", args.name,
            "--session-expiry", str(args.session_expiry), "--broker", args.broker, "--protocol", args.protocol,
            "--db", args.db]
    if args.insecure_dev:
        argv.append("--insecure-dev")
    for flag in ("ca_file", "cert_file", "key_file"):
        if getattr(args, flag):
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.verbose:
        argv.insert(0, "--verbose")
    return argv


def _ingest(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise CentralError("--workers must be at least 1")
    settings = broker_settings(args)
    if args.workers > 1:
        database = open_database(args)  # migrate once, and fail here in one line if unreachable
        database.close()
        asyncio.run(supervise([_worker_argv(args, i) for i in range(1, args.workers + 1)]))
        return 0
    database = open_database(args)
    worker = IngestWorker(settings, database, identifier=f"{args.name}-{args.index or 1}", group=args.group,
                          session_expiry_s=args.session_expiry)

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await worker.run()

    try:
        asyncio.run(serve())
    finally:
        database.close()
        log.info("worker %s stopped: %s", f"{args.name}-{args.index or 1}", dict(worker.counts))
    return 0
