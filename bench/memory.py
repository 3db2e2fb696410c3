"""Memory and idle wake-ups of `dho-gateway run` with the pages on (issue 17.11), against
`python -c "import gateway"` measured in the same run.

    .venv/bin/python bench/memory.py [--readings 1000000] [--idle 20] [--source bluez]

Starts a Mosquitto on a free loopback port, then the real `dho-gateway run` (insecure_dev against that
broker, the pages on, an idle device source: no device in range, as between two measurements) on an
empty outbox and on one holding N stored readings (filled as bench/outbox_history.py does: each reading
both waiting for the central service and kept as history, the worst case), and once without the pages
on the empty outbox (what the pages add). For each, once the pages answer, the uplink has connected and
the start-up count is done, the patient's page and its API are fetched once, the process is left alone
for `--settle` seconds, then measured:

- RSS (VmRSS), peak RSS (VmHWM) and Pss (smaps_rollup), in MiB;
- idle wake-ups per second: the voluntary + involuntary context switches of all the process's threads
  (/proc/PID/task/*/status) over `--idle` seconds, divided by the seconds; and the CPU share (utime+stime).

The baseline is `python -c "import gateway"` followed by a sleep, measured the same way in the same run;
the memory figures are given as ratios against it, the wake-ups as what `run` adds to it (the baseline's
are about 0/s, a ratio to nothing says nothing). Goals: RSS <= 60 MiB with the pages at 0 and at N
readings, <= 3 wake-ups/s idle.

The idle source (the gateway's `IdleDeviceSource`) is found as every source is, through the
`dho_gateway.device_sources` entry point: this script writes a distribution that only declares it
("bench-idle") and puts it on the measured processes' PYTHONPATH (the baseline's too). `--source bluez`
measures the production BLE source instead (bleak and D-Bus loaded; on a machine without BlueZ it waits
for it quietly, retrying at most every 300 s); `--source simulated-home` the demo's cuff (a reading a
second: not idle).

`--data DIR` keeps the filled outbox in DIR (reused when it holds the same number of readings: a 1M fill
takes minutes). `--env NAME=VALUE` (repeatable) sets the environment of the measured processes.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.outbox_history import fill
from gateway.demo import free_port
from gateway.storage import SealedOutbox, load_or_create_key

ROOT = Path(__file__).resolve().parent.parent
GOAL_RSS_MIB = 60.0
GOAL_WAKEUPS = 3.0


@dataclass
class Figures:
    name: str
    rss_kib: int
    hwm_kib: int
    pss_kib: int
    wakeups_s: float
    cpu_percent: float


def _status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")), 0)


def _switches(pid: int) -> dict[str, int]:
    """Voluntary + involuntary context switches of each of the process's threads, by thread id."""
    counts: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            counts[task.name] = sum(int(line.split()[1]) for line in (task / "status").read_text().splitlines()
                                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
    return counts


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (of all threads)


def measure(name: str, pid: int, idle_s: float) -> Figures:
    before, ticks, start = _switches(pid), _cpu_ticks(pid), time.monotonic()
    time.sleep(idle_s)
    after, ticks, elapsed = _switches(pid), _cpu_ticks(pid) - ticks, time.monotonic() - start
    # A thread started meanwhile counts whole; one that ended meanwhile is not counted (a lower bound).
    switches = sum(n - before.get(tid, 0) for tid, n in after.items())
    hz = os.sysconf("SC_CLK_TCK")
    return Figures(name, _status_field(pid, "VmRSS"), _status_field(pid, "VmHWM"), _pss_kib(pid),
                   switches / elapsed, 100 * ticks / hz / elapsed)


class Broker:
    """A plain Mosquitto on a free loopback port (as the tests' fixture starts it)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed (make mosquitto)")
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
                        "persistence false\nset_tcp_nodelay true\n")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        _wait_listening(self.port, 10, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _wait_listening(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout_s} s")


def write_config(folder: Path, broker_port: int, web_port: int, source: str, *, pages: bool = True) -> Path:
    path = folder / "gateway.toml"
    path.write_text(
        f'device_source = "{source}"\n'
        f'[gateway]\nid = "gw-bench"\ntenant = "bench"\npatient = "p-7f3a9c"\ndata_dir = "{folder}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\ninsecure_dev = true\n'
        f'[web]\nenabled = {"true" if pages else "false"}\nhost = "127.0.0.1"\nport = {web_port}\n'
        # 1M readings take 1.7 GB: over the default bound (256 MB) the gateway would be in its "outbox full"
        # state (a fault, events held in memory), which is not what is measured here.
        '[outbox]\nmax_size_mb = 4096\n'
        '[[devices]]\naddress = "F0:5E:1A:00:00:01"\nkind = "blood_pressure"\nserial = "SIMBPM0001"\n'
    )
    return path


def _wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise SystemExit(f"dho-gateway run exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    raise SystemExit(f"no {text!r} in the gateway's log after {timeout_s} s:\n{log.read_text()}")


def run_gateway(name: str, folder: Path, broker: Broker, args: argparse.Namespace,
                env: dict[str, str], *, pages: bool = True) -> Figures:
    web_port = free_port()
    config = write_config(folder, broker.port, web_port, args.source, pages=pages)
    log = folder / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config)],
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_line(log, " started: ", process, 120)
        if pages:
            _wait_listening(web_port, 60, process)
        _wait_for_line(log, "connected to broker", process, 60)  # the uplink is up
        _wait_for_line(log, "reading(s) waiting in the outbox", process, 300)  # the one count at start-up is done
        for path in ("/", "/api/patient") if pages else ():  # the page loaded once, as a kiosk does
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}{path}", timeout=30) as answer:
                answer.read()
        time.sleep(args.settle)
        return measure(name, process.pid, args.idle)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise SystemExit(f"dho-gateway run did not stop within 30 s of SIGTERM:\n{log.read_text()}") from None
        if process.returncode != 0:
            raise SystemExit(f"dho-gateway run exited with {process.returncode} on SIGTERM:\n{log.read_text()}")


def run_import(args: argparse.Namespace, env: dict[str, str]) -> Figures:
    process = subprocess.Popen([sys.executable, "-c", "import gateway, sys, time; print('ready', flush=True); "
                                "sys.stdin.read()"],
                               cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stdin is not None
    try:
        process.stdout.readline()
        time.sleep(args.settle)
        return measure('python -c "import gateway"', process.pid, args.idle)
    finally:
        process.stdin.close()
        process.wait(10)


def idle_source_path(work: Path) -> Path:
    """A folder holding a tiny distribution whose entry point offers the gateway's own idle source
    (`IdleDeviceSource`: delivers nothing until cancelled) as "bench-idle"."""
    folder = work / "idle-source"
    info = folder / "bench_idle_source-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-idle-source\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[dho_gateway.device_sources]\nbench-idle = gateway.service.device_sources:IdleDeviceSource\n")
    return folder


def filled(cache: Path, readings: int) -> Path:
    """A data directory holding `readings` stored readings: reused from `cache` when it was filled
    with the same number, otherwise filled now."""
    folder = cache / f"outbox-{readings}"
    stamp = folder / "filled.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("readings") == readings:
        print(f"reusing the {readings:,} readings filled in {folder}")
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    began = time.perf_counter()
    fill(folder, readings)
    size = (folder / "outbox.sqlite3").stat().st_size
    print(f"filled {readings:,} readings (+ history) in {time.perf_counter() - began:.0f} s, "
          f"file {size / 2**20:.0f} MiB")
    stamp.write_text(json.dumps({"readings": readings}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=1_000_000, help="readings stored for the second run")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds over which wake-ups are counted")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the page load before measuring")
    parser.add_argument("--source", default="bench-idle",
                        help="device_source (default: an idle one; bluez: the production BLE source)")
    parser.add_argument("--data", type=Path, help="keep the filled outbox here, and reuse it")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the measured processes (e.g. MALLOC_ARENA_MAX=2)")
    args = parser.parse_args()
    env = dict(os.environ)
    env.update(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(idle_source_path(work)), env.get("PYTHONPATH")]))
        empty = work / "empty"
        empty.mkdir(mode=0o700)
        SealedOutbox(empty / "outbox.sqlite3", load_or_create_key(empty / "outbox.key")).close()
        full = filled(args.data or work, args.readings)
        broker = Broker(work)
        try:
            base = run_import(args, env)
            rows = [base,
                    run_gateway("run, no pages, empty outbox", empty, broker, args, env, pages=False),
                    run_gateway("run, pages, empty outbox", empty, broker, args, env),
                    run_gateway(f"run, pages, {args.readings:,} readings", full, broker, args, env)]
        finally:
            broker.stop()
    print(f"the pages add {(rows[2].rss_kib - rows[1].rss_kib) / 1024:.1f} MiB RSS "
          f"({rows[2].wakeups_s - rows[1].wakeups_s:+.2f} wake-ups/s) to an empty outbox's `run`")
    print(f"idle {args.idle:g} s after a page load, device source {args.source!r}"
          + (f", {' '.join(args.env)}" if args.env else ""))
    print(f"{'':36}{'RSS MiB':>8} {'ratio':>6} {'peak MiB':>9} {'Pss MiB':>8} {'ratio':>6} "
          f"{'wake-ups/s':>11} {'added':>7} {'CPU %':>6}")
    for f in rows:
        print(f"{f.name:<36}{f.rss_kib / 1024:8.1f} {f.rss_kib / base.rss_kib:6.2f} {f.hwm_kib / 1024:9.1f} "
              f"{f.pss_kib / 1024:8.1f} {f.pss_kib / max(base.pss_kib, 1):6.2f} {f.wakeups_s:11.2f} "
              f"{f.wakeups_s - base.wakeups_s:+7.2f} {f.cpu_percent:6.2f}")
    runs = rows[2:]
    rss_ok = all(f.rss_kib <= GOAL_RSS_MIB * 1024 for f in runs)
    wake_ok = all(f.wakeups_s <= GOAL_WAKEUPS for f in runs)
    print(f"goals with the pages: RSS <= {GOAL_RSS_MIB:g} MiB at 0 and {args.readings:,} readings: "
          f"{'PASS' if rss_ok else 'FAIL'}; <= {GOAL_WAKEUPS:g} wake-ups/s idle: {'PASS' if wake_ok else 'FAIL'}")


if __name__ == "__main__":
    main()
