"""Whole-path chaos benchmark: simulated home -> `dho-gateway run` -> Mosquitto -> `dho-central ingest` ->
SQLite, with faults injected at random times from a seeded RNG (issue 19, item 11).

    .venv/bin/python bench/chaos.py [--seed 1] [--readings 40] [--faults 6] [--seconds 120]

Every process is real and separate: Mosquitto (persistence on, as in production), the central's ingest
worker (`dho-central ingest --db FILE`), and the gateway (`dho-gateway run` with the shipped example
configuration, `insecure_dev` against this broker, device_source "simulated-home" measuring once a
second). The gateway is started through this file's `--gateway-child` mode, which is `dho-gateway run`
itself with one addition: the simulated cuff writes each measurement to a ledger file (fsynced) before
it hands it to the gateway, and marks it confirmed once the gateway's sink returned. That ledger is the
benchmark's own record of what was measured: it does not come from the gateway's storage.

Faults, one at a time, at random times (seeded):
  kill      SIGKILL of the gateway, restarted 1-3 s later
  broker    Mosquitto stopped, started again 2-6 s later (same port, same persistence file)
  worker    SIGKILL of the central's ingest worker, restarted 1-4 s later
  refusal   the gateway deprovisioned at the central for 3-8 s (its messages are refused; the worker is
            restarted at once, its 30 s registry cache would outlast the fault), then provisioned again
  disk      the gateway stopped (SIGTERM) and started with RLIMIT_FSIZE just above its largest file, for
            4-8 s: no file it writes can grow (EFBIG, as ENOSPC for SQLite: "database or disk is full"),
            then stopped (SIGTERM) and started without the limit

Not injected (said, not pretended):
  clock jump  this machine is shared by several engineers: stepping its system clock would disturb every
              other run on it; no libfaketime here. Not done.
  (full disk, as a tmpfs or loop device: none on this machine, and the outbox's `max_size_mb`, at least
              1 MB, is far above what a short run fills; see "disk" above for what is done instead)

With `--leave worker|broker|refusal` one fault is left in place at the end while the cuff measures
`--leave-seconds` more: what is not delivered then must be told. The worklist's silent-kit check runs at
the count with a threshold of `--silent-after` seconds (48 h in production).
Otherwise at the end the faults stop, everything is brought back, and the run settles until the outbox is empty or
`--settle` seconds pass. Each confirmed measurement is then one of:
  delivered  in the central's store
  told       still in the gateway's outbox AND a person is told: `dho-gateway status --json` shows a fault,
             or the central's registry shows a fault for the kit, or an open alert for the kit (refused,
             silent, fault, outbox) is on the worklist
  silent     neither
Measurements the gateway did not confirm (its sink answered `not_stored`, as it does while the disk cannot
take a reading, or it was killed inside the hand-over) are counted apart: `Delivery.NOT_STORED` tells the
device to keep the value, and a real cuff sends it again; the simulated one does not.
Prints the counts, the fault log, and PASS (silent == 0) or FAIL; exits 1 on FAIL.

The detector's own check: `--leave worker --silent-after 3600` fails (the readings made while the ingest
worker is down wait in the outbox and nobody is told within the hour: `status --json` shows no fault for
an outbox that waits, and the worklist's silent-kit alert comes only after its threshold).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GATEWAY, TENANT, PATIENT = "gw-0001", "demo-kommune", "p-7f3a9c"  # the example configuration's
FAULTS = ("kill", "broker", "worker", "refusal", "disk")
BIN = Path(sys.executable).parent


def gateway_child(config: str, ledger: str) -> int:
    """`dho-gateway run --config CONFIG`, with the simulated cuff writing what it measures to LEDGER."""
    from hardware_sims import home

    original = home.SimulatedHome.run

    async def run(self: home.SimulatedHome, sink: home.GattSink) -> None:
        with open(ledger, "a", encoding="utf-8") as out:  # noqa: ASYNC230 - one small line per measurement
            async def recorded(address: str, characteristic: str, value: bytes) -> object:
                stamp = self._last_time.isoformat() if self._last_time is not None else "?"
                out.write(json.dumps({"measured": stamp, "at": time.time()}) + "\n")
                out.flush()
                os.fsync(out.fileno())
                result = await sink(address, characteristic, value)
                out.write(json.dumps({"confirmed": stamp, "delivery": str(result), "at": time.time()}) + "\n")
                out.flush()
                os.fsync(out.fileno())
                return result

            await original(self, recorded)

    home.SimulatedHome.run = run  # type: ignore[method-assign]
    limit = os.environ.get("DHO_CHAOS_FSIZE")
    if limit:  # the "full disk": no file this process writes may grow past `limit` bytes (EFBIG)
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    from gateway.service.cli import main as cli_main

    return cli_main(["run", "--config", config])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Bench:
    folder: Path
    port: int
    log: list[str] = field(default_factory=list)
    broker: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def db(self) -> Path:
        return self.folder / "central.sqlite3"

    @property
    def config(self) -> Path:
        return self.folder / "gateway.toml"

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.jsonl"

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:7.1f} s  {text}")

    def start_broker(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            sys.exit("bench/chaos.py needs Mosquitto (make mosquitto)")
        conf = self.folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
                        f"persistence true\npersistence_location {self.folder}/\nset_tcp_nodelay true\n")
        self.broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            sys.exit("Mosquitto did not start")

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.terminate()
            self.broker.wait(timeout=10)
            self.broker = None

    def start_worker(self) -> None:
        log = open(self.folder / "central.log", "ab")  # noqa: SIM115 - the child keeps it
        self.worker = subprocess.Popen(
            [str(BIN / "dho-central"), "ingest", "--workers", "1", "--name", "chaos-central",
             "--broker", f"127.0.0.1:{self.port}", "--insecure-dev", "--db", str(self.db)],
            stdout=log, stderr=log, start_new_session=True, cwd=ROOT)

    def kill_worker(self) -> None:
        if self.worker is not None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)
            self.worker = None

    def start_gateway(self, fsize: int | None = None) -> None:
        log = open(self.folder / "gateway.log", "ab")  # noqa: SIM115 - the child keeps it
        env = {**os.environ, "DHO_CHAOS_FSIZE": str(fsize)} if fsize else None
        self.gateway = subprocess.Popen(
            [sys.executable, __file__, "--gateway-child", str(self.config), str(self.ledger)],
            stdout=log, stderr=log, start_new_session=True, cwd=ROOT, env=env)

    def disk_limit(self) -> int:
        """A file size limit just above the largest file the gateway has now (its outbox, its WAL, the ledger)."""
        files = [self.ledger, *(self.folder / "gateway").iterdir()]
        return max(f.stat().st_size for f in files if f.is_file()) + 4096

    def kill_gateway(self, sig: int = signal.SIGKILL) -> None:
        if self.gateway is not None:
            os.killpg(self.gateway.pid, sig)
            self.gateway.wait(timeout=20)
            self.gateway = None

    def registry(self, present: bool) -> None:
        from central.store import Database

        database = Database(str(self.db))
        try:
            if present:
                database.provision(GATEWAY, tenant=TENANT, patient=PATIENT)
            else:
                database.deprovision(GATEWAY)
        finally:
            database.close()

    def write_config(self) -> None:
        text = (ROOT / "config" / "gateway.example.toml").read_text()
        data = self.folder / "gateway"
        data.mkdir(exist_ok=True)
        text = text.replace('data_dir = "/var/lib/dho-gateway"', f'data_dir = "{data}"')
        text = text.replace("insecure_dev = false", "insecure_dev = true").replace("port = 8883", f"port = {self.port}")
        text = text.replace('host = "mqtt.dho.example.no"', 'host = "127.0.0.1"')
        text = text.replace("ack_timeout_s = 30 ", "ack_timeout_s = 3  ").replace("status_interval_s = 300",
                                                                                 "status_interval_s = 2")
        text = text.replace("enabled = true", "enabled = false")  # no port of its own: status --json instead
        self.config.write_text(text)

    def measured(self) -> int:
        if not self.ledger.exists():
            return 0
        return sum(1 for line in self.ledger.read_text().splitlines() if '"measured"' in line)

    def shutdown(self) -> None:
        for stop in (self.kill_gateway, self.kill_worker, self.stop_broker):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                stop()


def refuse(bench: Bench) -> None:
    """Deprovision the gateway, and restart the worker so that the refusal starts now: a running worker
    keeps a gateway's registry entry for up to 30 s (docs/central.md), longer than a short run's fault."""
    bench.registry(present=False)
    bench.kill_worker()
    bench.start_worker()


def inject(bench: Bench, fault: str, rng: random.Random) -> None:
    """One fault and its repair; each is logged with its time."""
    if fault == "kill":
        bench.kill_gateway()
        pause = rng.uniform(1, 3)
        bench.note(f"kill -9 gateway, restart in {pause:.1f} s")
        time.sleep(pause)
        bench.start_gateway()
    elif fault == "broker":
        bench.stop_broker()
        pause = rng.uniform(2, 6)
        bench.note(f"broker stopped for {pause:.1f} s")
        time.sleep(pause)
        bench.start_broker()
    elif fault == "worker":
        bench.kill_worker()
        pause = rng.uniform(1, 4)
        bench.note(f"kill -9 central worker, restart in {pause:.1f} s")
        time.sleep(pause)
        bench.start_worker()
    elif fault == "disk":
        bench.kill_gateway(signal.SIGTERM)
        limit = bench.disk_limit()
        bench.start_gateway(fsize=limit)
        pause = rng.uniform(4, 8)
        bench.note(f"disk full for the gateway (RLIMIT_FSIZE {limit} B) for {pause:.1f} s")
        time.sleep(pause)
        bench.kill_gateway(signal.SIGTERM)
        bench.start_gateway()
    elif fault == "refusal":
        refuse(bench)
        pause = rng.uniform(3, 8)
        bench.note(f"gateway deprovisioned at the central (refused) for {pause:.1f} s")
        time.sleep(pause)
        bench.registry(present=True)
    bench.note(f"{fault}: repaired")


def read_ledger(path: Path) -> tuple[list[str], set[str]]:
    measured: list[str] = []
    confirmed: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by kill -9
            if "measured" in entry:
                measured.append(entry["measured"])
            elif entry.get("delivery") != "not_stored":  # not_stored: the gateway told the device to keep it
                confirmed.add(entry["confirmed"])
    return measured, confirmed


def central_state(db: Path) -> tuple[set[str], list[str]]:
    """Device times of the readings stored, and why a person was told about this kit (faults, alerts)."""
    from central.store import Database
    from protocol import WireReading

    database = Database(str(db))
    try:
        stored = {WireReading.model_validate_json(b).device_time.isoformat()  # type: ignore[union-attr]
                  for b in database.reading_bodies(GATEWAY)}
        told = [f"central registry fault: {f}" for g in database.gateways() if g.id == GATEWAY for f in g.faults]
    finally:
        database.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kind, subject, state FROM alerts WHERE gateway = ? AND kind != 'reading' "
                            "AND state != 'done'", (GATEWAY,)).fetchall()
    told += [f"worklist alert: {kind} {subject} ({state})" for kind, subject, state in rows]
    return stored, told


def gateway_state(config: Path) -> tuple[set[str], list[str]]:
    """Device times still in the outbox (gateway stopped), and the faults `status --json` shows."""
    from gateway.settings import load_settings
    from gateway.storage import SealedOutbox, key_source_for
    from protocol import WireReading

    settings = load_settings(config)
    outbox = SealedOutbox(settings.gateway.outbox_path, key_source_for(settings.gateway).load(create=False))
    try:
        waiting = {WireReading.model_validate_json(e.payload).device_time.isoformat()  # type: ignore[union-attr]
                   for e in outbox.pending(0, 1_000_000)}
    finally:
        outbox.close()
    status = subprocess.run([str(BIN / "dho-gateway"), "status", "--config", str(config), "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    try:
        faults = [f"gateway status fault: {f}" for f in json.loads(status.stdout).get("faults", [])]
    except ValueError:
        faults = [f"gateway status failed: {status.stderr.strip()[-200:]}"] if status.returncode else []
    return waiting, faults


def settle(bench: Bench, args: argparse.Namespace) -> None:
    """Stop measuring (SIGTERM), start the gateway again and wait until what was confirmed is stored (the
    restarted cuff measures again: those join the ledger and are counted too)."""
    bench.kill_gateway(signal.SIGTERM)
    bench.note(f"measuring stopped (SIGTERM) after {bench.measured()} measurement(s); settling")
    bench.start_gateway()
    settle_until = time.monotonic() + args.settle
    while time.monotonic() < settle_until:
        _, confirmed = read_ledger(bench.ledger)
        stored, _ = central_state(bench.db)
        if confirmed and confirmed <= stored:
            break
        time.sleep(0.5)


def leave_broken(bench: Bench, args: argparse.Namespace) -> None:
    """Break one thing and leave it broken while the cuff measures for `--leave-seconds` more: what is
    not delivered then must be told. The worklist's silent-kit check runs at the count with a threshold of
    `--silent-after` seconds (`dho-central worklist serve --silent-after-h`, 48 h in production)."""
    if args.leave == "worker":
        bench.kill_worker()
    elif args.leave == "broker":
        bench.stop_broker()
    elif args.leave == "refusal":
        refuse(bench)
    bench.note(f"left broken: {args.leave}, measuring {args.leave_seconds:g} s more")
    time.sleep(args.leave_seconds)


def silent_check(db: Path, silent_after_s: float) -> int:
    from datetime import UTC, datetime, timedelta

    from central.store import Database
    from central.worklist import Worklist

    database = Database(str(db))
    try:
        return Worklist(database).check_kits(datetime.now(UTC), silent_after=timedelta(seconds=silent_after_s))
    finally:
        database.close()


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="dho-bench-chaos-") as tmp:
        folder = Path(tempfile.mkdtemp(prefix="dho-bench-chaos-")) if args.keep else Path(tmp)
        bench = Bench(folder, free_port())
        try:
            return chaos(bench, rng, args)
        finally:
            bench.shutdown()
            if args.keep:
                print(f"kept: {folder} (gateway.log, central.log, ledger.jsonl, central.sqlite3)")


def chaos(bench: Bench, rng: random.Random, args: argparse.Namespace) -> int:
    bench.write_config()
    bench.start_broker()
    bench.registry(present=True)
    bench.start_worker()
    bench.start_gateway()
    bench.note(f"started: broker :{bench.port}, central worker, gateway (seed {args.seed})")
    # Fault times: spread over the time the readings take (one a second), in order.
    span = max(2.0, min(args.seconds, args.readings * 1.0))
    times = sorted(rng.uniform(1.0, span) for _ in range(args.faults))
    chosen = tuple(args.kinds.split(","))
    kinds = [chosen[i % len(chosen)] for i in range(args.faults)]
    rng.shuffle(kinds)
    deadline = time.monotonic() + args.seconds
    for at, fault in zip(times, kinds, strict=True):
        while time.monotonic() - bench.started < at and time.monotonic() < deadline:
            time.sleep(0.05)
        inject(bench, fault, rng)
    while bench.measured() < args.readings and time.monotonic() < deadline:
        time.sleep(0.1)
    if args.leave:
        leave_broken(bench, args)
    else:
        settle(bench, args)
    bench.kill_gateway(signal.SIGTERM)
    bench.note("gateway stopped (SIGTERM) for the count")
    opened = silent_check(bench.db, args.silent_after)
    bench.note(f"worklist silent-kit check (silent after {args.silent_after:g} s): {opened} alert(s) opened")
    measured, confirmed = read_ledger(bench.ledger)
    stored, central_told = central_state(bench.db)
    waiting, gateway_told = gateway_state(bench.config)
    told_why = central_told + gateway_told
    delivered = told = silent = 0
    silent_ones: list[str] = []
    for stamp in sorted(confirmed):
        if stamp in stored:
            delivered += 1
        elif stamp in waiting and told_why:
            told += 1
        else:
            silent += 1
            silent_ones.append(f"{stamp} ({'in the outbox, nobody told' if stamp in waiting else 'lost'})")
    unconfirmed = [m for m in measured if m not in confirmed and m not in stored]
    print(f"chaos: seed {args.seed}, {len(measured)} measured, {len(confirmed)} confirmed by the gateway, "
          f"{args.faults} fault(s)")
    print("fault log:")
    for line in bench.log:
        print(f"  {line}")
    print(f"delivered {delivered}   told {told}   silent {silent}")
    if unconfirmed:
        print(f"not confirmed by the gateway (it answered not_stored, or was killed in the hand-over: a real "
              f"cuff keeps these and sends them again; the simulated one does not): {len(unconfirmed)}")
    for why in told_why:
        print(f"  told: {why}")
    for one in silent_ones:
        print(f"  SILENT: {one}")
    ok = silent == 0 and len(confirmed) > 0
    print(f"{'PASS' if ok else 'FAIL'}: silent {silent} of {len(confirmed)} (delivered ratio "
          f"{delivered / max(1, len(confirmed)):.2f})")
    return 0 if ok else 1


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--gateway-child":
        return gateway_child(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--readings", type=int, default=40, help="measurements to take (one a second)")
    parser.add_argument("--faults", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=180, help="the most the measuring phase may take")
    parser.add_argument("--settle", type=float, default=60, help="the most the settling phase may take")
    parser.add_argument("--kinds", default=",".join(FAULTS), help=f"faults to draw from (default {','.join(FAULTS)})")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, ledger, databases)")
    parser.add_argument("--leave", choices=("worker", "broker", "refusal"),
                        help="leave this broken at the end (instead of settling): the undelivered must be told")
    parser.add_argument("--leave-seconds", type=float, default=12)
    parser.add_argument("--silent-after", type=float, default=6,
                        help="the worklist's silent-kit threshold at the count, seconds (production: 48 h)")
    args = parser.parse_args()
    if unknown := set(args.kinds.split(",")) - set(FAULTS):
        parser.error(f"--kinds: unknown {', '.join(sorted(unknown))}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
