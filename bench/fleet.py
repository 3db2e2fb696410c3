"""The central side at fleet scale: N simulated gateways (the real uplink) -> Mosquitto -> 1, 2, 4 ingest
worker processes (`dho-central ingest`) -> PostgreSQL; baselines measured in the same run.

    .venv/bin/python bench/fleet.py [--gateways 2000] [--per-gateway 5] [--workers 1,2,4] [--db URL]

Prints, each against a baseline from the same run:
  - readings/s stored and acked with 1, 2, 4 workers, against a raw QoS 1 publish -> subscribe loop of the
    same payloads through the same broker, and against raw INSERTs of the same rows into the same database;
  - ack latency p50/p99 (a reading put in a gateway's outbox -> its ack back at the gateway);
  - the reconnection storm: the broker restarted while every gateway buffers a day of readings; seconds
    from the broker's return until every reading is acked;
  - memory per simulated gateway (the fleet process's resident size / N).
Uses PostgreSQL at 127.0.0.1:5432 (a throwaway database) unless --db names another.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.fleet_sim import Fleet, quiet_sync_logs, wire_reading  # noqa: E402
from central.store import Database  # noqa: E402
from protocol import (  # noqa: E402
    BrokerSettings,
    WireReading,
    make_client,
)

ADMIN = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Broker:
    """Mosquitto with persistence and queues sized for a consumer group (see docs/central.md)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        (folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence true\npersistence_location {folder}/\nset_tcp_nodelay true\n"
            "max_queued_messages 200000\nmax_inflight_messages 20\n"
        )
        self.argv = [binary, "-c", str(folder / "mosquitto.conf")]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdout=(self.folder / "log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class Workers:
    def __init__(self, count: int, db: str, port: int, folder: Path) -> None:
        name = f"bench-{count}w-{uuid.uuid4().hex[:4]}"
        self.argv = [
            [sys.executable, "-m", "central.cli", "ingest", "--workers", "1", "--index", str(i), "--name", name,
             "--group", name, "--session-expiry", "300", "--db", db, "--broker", f"127.0.0.1:{port}",
             "--insecure-dev"]
            for i in range(1, count + 1)
        ]
        self.logs = [folder / f"{name}-{i}.log" for i in range(1, count + 1)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> None:
        for argv, log in zip(self.argv, self.logs, strict=True):
            self.processes.append(subprocess.Popen(argv, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT))

    async def start(self) -> None:
        self.spawn()
        async with asyncio.timeout(60):
            while not all(b" ready: " in log.read_bytes() for log in self.logs):  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        for p in self.processes:
            p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def fleet_round(fleet: Fleet, per_gateway: int) -> tuple[float, list[float]]:
    fleet.latencies.clear()
    started = time.monotonic()
    n = fleet.measure(per_gateway)
    await fleet.wait("drained", 900)
    return n / (time.monotonic() - started), list(fleet.latencies)


async def raw_pubsub(port: int, payloads: list[bytes], per_message: int) -> float:
    """Readings/s through the same broker with nothing behind it: QoS 1 publish -> QoS 1 subscriber."""
    settings = BrokerSettings(port=port, insecure_dev=True)
    received = 0
    done = asyncio.Event()
    async with make_client(settings, "raw-sub") as sub:
        await sub.subscribe("bench/raw/#", qos=1)

        async def consume() -> None:
            nonlocal received
            async for _ in sub.messages:
                received += 1
                if received == len(payloads):
                    done.set()

        task = asyncio.create_task(consume())
        started = time.monotonic()
        clients = 8
        async with asyncio.TaskGroup() as tasks:
            for c in range(clients):
                async def publish_share(c: int = c) -> None:
                    async with make_client(settings, f"raw-pub-{c}", max_inflight=8) as pub:
                        await asyncio.gather(*(pub.publish(f"bench/raw/{c}", p, qos=1)
                                               for p in payloads[c::clients]))
                tasks.create_task(publish_share())
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.monotonic() - started
        task.cancel()
    return len(payloads) * per_message / elapsed


def round_payloads(fleet: Fleet, per_gateway: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """One ReadingBatch per gateway, on its own topic, as its uplink would publish it (fresh ids)."""
    found = []
    for g in fleet.gateways:
        readings = [wire_reading(g.patient, g.device, datetime.now(UTC).replace(microsecond=0), rng)
                    for _ in range(per_gateway)]
        found.append((g.uplink_topic, (
            '{"v":1,"gateway":"' + g.id + '","batch":"' + str(uuid.uuid4()) + '","sent":"'
            + datetime.now(UTC).isoformat() + '","readings":[' + ",".join(r.model_dump_json() for r in readings)
            + "]}").encode()))
    return found


async def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    settings = BrokerSettings(port=port, insecure_dev=True)
    clients = 8

    async def share(c: int) -> None:
        async with make_client(settings, f"backlog-pub-{c}", max_inflight=8) as pub:
            await asyncio.gather(*(pub.publish(topic, payload, qos=1) for topic, payload in messages[c::clients]))

    async with asyncio.TaskGroup() as tasks:
        for c in range(clients):
            tasks.create_task(share(c))


async def backlog_drain(workers: Workers, database: Database, port: int, messages: list[tuple[str, bytes]],
                        per_message: int) -> float:
    """Readings/s the group stores from a backlog queued in its sessions while it was down: the
    workers, the broker and the database, without 2,000 simulated gateways competing for the CPU."""
    workers.stop()
    await publish_all(port, messages)
    before = database.count()
    workers.processes.clear()
    spawned = time.monotonic()
    workers.spawn()
    expected = before + len(messages) * per_message
    async with asyncio.timeout(900):
        # The clock starts at the first reading stored: process start-up is not ingest.
        while (first := await asyncio.to_thread(database.count)) == before:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        started = time.monotonic()
        while await asyncio.to_thread(database.count) < expected:  # noqa: ASYNC110 (progress is in the database)
            await asyncio.sleep(0.2)
    if first >= expected:  # all of it in the first commit (a tiny run): count from the start instead
        return (expected - before) / (time.monotonic() - spawned)
    return (expected - first) / (time.monotonic() - started)


def raw_inserts(db: Database, readings: list[list[WireReading]]) -> float:
    """Readings/s as plain INSERTs of the same rows into a table of the readings table's shape, one
    transaction per gateway batch: the database's own pace, with no MQTT, validation or FHIR."""
    meta = sa.MetaData()
    table = sa.Table(
        "bench_raw_readings", meta,
        sa.Column("id", sa.String(36), primary_key=True), sa.Column("tenant", sa.String(64)),
        sa.Column("gateway", sa.String(64)), sa.Column("patient", sa.String(64)), sa.Column("type", sa.String(32)),
        sa.Column("effective", sa.DateTime(timezone=True)), sa.Column("zone", sa.String(16)),
        sa.Column("body", sa.Text), sa.Column("stored_at", sa.DateTime(timezone=True)),
    )
    meta.drop_all(db.engine)
    meta.create_all(db.engine)
    started = time.monotonic()
    n = 0
    for group in readings:
        rows = [{"id": str(r.id), "tenant": "t", "gateway": "g", "patient": r.patient, "type": r.type,
                 "effective": r.effective, "zone": r.assessment.zone, "body": r.model_dump_json(),
                 "stored_at": datetime.now(UTC)} for r in group]
        with db.engine.begin() as conn:
            conn.execute(sa.insert(table), rows)
        n += len(rows)
    return n / (time.monotonic() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2000)
    parser.add_argument("--per-gateway", type=int, default=5, help="readings per gateway per round")
    parser.add_argument("--day", type=int, default=6, help="readings buffered per gateway for the storm")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--ack-timeout", type=float, default=60.0, help="the gateways' sync.ack_timeout_s")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the broker is down in the storm")
    parser.add_argument("--db", help="database URL (default: a throwaway database on the local PostgreSQL)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # 2,000 clients losing the broker at once each leave an "exception never retrieved" in aiomqtt.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 2,000 sockets here, 2,000 in Mosquitto

    folder = Path(tempfile.mkdtemp(prefix="dho-fleet-"))
    throwaway = None
    if args.db is None:
        import psycopg

        throwaway = f"dho_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{ADMIN}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {throwaway}")  # type: ignore[arg-type]
        args.db = f"{ADMIN}/{throwaway}"
    broker = Broker(folder)
    broker.start()
    database = Database(args.db)
    settings = BrokerSettings(port=broker.port, insecure_dev=True)
    started: list[Workers] = []
    try:
        before = rss_mb()
        fleet = Fleet(settings, args.gateways, tenants=20, prefix="fl", ack_timeout_s=args.ack_timeout)
        for gateway, tenant, patient in fleet.registry():
            database.provision(gateway, tenant=tenant, patient=patient)
        print(f"fleet: {args.gateways} gateways (real uplink, MQTT 5, batch <= 50, window 8), "
              f"{args.per_gateway} reading(s) per gateway per round; database {database.dialect}")
        with quiet_sync_logs():
            runner = asyncio.create_task(fleet.run(connect_spread_s=5))
            connect_s = await fleet.wait("connected", 300)  # includes the 5 s spread of start times
            per_gateway_kb = (rss_mb() - before) * 1024 / args.gateways
            print(f"connected in {connect_s:.1f} s; memory per simulated gateway {per_gateway_kb:.0f} KB "
                  f"(fleet process RSS {rss_mb():.0f} MB)")

            # Baselines with payloads like the ones a round publishes: one batch per gateway.
            rng = random.Random(7)
            payloads = [payload for _, payload in round_payloads(fleet, args.per_gateway, rng)]
            sample = [[WireReading.model_validate(r) for r in json.loads(p)["readings"]] for p in payloads]
            pubsub = await raw_pubsub(broker.port, payloads, args.per_gateway)
            inserts = await asyncio.to_thread(raw_inserts, database, sample)
            print(f"baseline raw QoS 1 publish -> subscribe (same broker, same payloads): {pubsub:,.0f} readings/s")
            print(f"baseline raw INSERTs (same database, same rows, one transaction per batch): "
                  f"{inserts:,.0f} readings/s")

            results: dict[int, float] = {}
            drained: dict[int, float] = {}
            backlog_total = 0
            counts = [int(w) for w in args.workers.split(",")]
            for count in counts:
                workers = Workers(count, args.db, broker.port, folder)
                started.append(workers)
                await workers.start()
                await fleet_round(fleet, 1)  # warm-up: first statuses, registry cache, pools
                backlog = await backlog_drain(workers, database, broker.port,
                                              round_payloads(fleet, args.per_gateway, rng), args.per_gateway)
                drained[count] = backlog
                backlog_total += len(fleet.gateways) * args.per_gateway
                print(f"{count} worker(s), backlog queued while down: {backlog:,.0f} readings/s stored and acked "
                      f"(ratio {backlog / pubsub:.2f} of raw pub/sub, {backlog / inserts:.2f} of raw INSERTs)")
                rate, lat = await fleet_round(fleet, args.per_gateway)
                results[count] = rate
                print(f"{count} worker(s), live fleet: {rate:,.0f} readings/s stored and acked "
                      f"(ratio {rate / pubsub:.2f} of raw pub/sub, {rate / inserts:.2f} of raw INSERTs); "
                      f"ack latency p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
                      f"p99 {percentile(lat, 0.99) * 1000:.0f} ms")
                if count != counts[-1]:
                    workers.stop()  # another group would get its own copy of every message
                else:
                    storm_workers = workers
            one, first = results[counts[0]], drained[counts[0]]
            print("scaling, live fleet: " + ", ".join(f"{c} worker(s) {r / one:.2f}x" for c, r in results.items()))
            print("scaling, backlog: " + ", ".join(f"{c} worker(s) {r / first:.2f}x" for c, r in drained.items()))

            # The storm: the broker restarts while every gateway buffers a day of readings.
            broker.stop()
            down = time.monotonic()
            async with asyncio.timeout(120):
                while fleet.connected():  # noqa: ASYNC110 (every uplink must have noticed)
                    await asyncio.sleep(0.1)
            n = fleet.measure(args.day)
            await asyncio.sleep(max(0.0, args.down - (time.monotonic() - down)))
            fleet.latencies.clear()
            broker.start()
            back = time.monotonic()
            reconnect_s = await fleet.wait("connected", 600)
            await fleet.wait("drained", 900)
            drain_s = time.monotonic() - back
            print(f"reconnection storm: {args.gateways} gateways, {n:,} buffered readings; all reconnected in "
                  f"{reconnect_s:.1f} s, all acked {drain_s:.1f} s after the broker came back "
                  f"({n / drain_s:,.0f} readings/s, ratio {n / drain_s / results[counts[-1]]:.2f} of the steady "
                  f"{counts[-1]}-worker rate)")
            storm_workers.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        stored = database.count() - backlog_total
        print(f"check: {len(fleet.sent):,} readings sent by the fleet, {len(fleet.acked):,} acked, {stored:,} "
              f"stored (besides {backlog_total:,} from the backlogs), {database.duplicate_ids()} stored twice")
    finally:
        for workers in started:
            workers.stop()
        database.close()
        broker.stop()
        if throwaway:
            import psycopg

            with psycopg.connect(f"{ADMIN}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {throwaway} WITH (FORCE)")  # type: ignore[arg-type]
        shutil.rmtree(folder, ignore_errors=True)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    asyncio.run(main())
