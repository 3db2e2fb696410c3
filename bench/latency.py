"""Latency benchmark: reading stored on the gateway -> acknowledged by the central service, p50 and p90.

    .venv/bin/python bench/latency.py [--readings 40] [--interval 0.1]

The demo's real path (simulated cuff, pipeline, zoning, sealed outbox, uplink, a real Mosquitto, the
reference central receiver, its commit and ack) is run twice in the same process against the same
broker: first with Nagle's algorithm left on the MQTT client sockets (the baseline: what the gateway
did before issue 10 item 7), then with TCP_NODELAY as shipped. The broker has `set_tcp_nodelay true`,
as config/mosquitto.example.conf asks of production brokers. Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

import protocol.mqtt
from gateway.demo import free_port, run_demo


@contextmanager
def mosquitto(folder: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        sys.exit("bench/latency.py needs Mosquitto (make mosquitto)")
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
                    "persistence false\nset_tcp_nodelay true\n")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or broker.poll() is not None:
                    sys.exit("Mosquitto did not start")
                time.sleep(0.05)
        yield port
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def measure(port: int, folder: Path, readings: int, interval_s: float) -> list[float]:
    folder.mkdir()
    result = asyncio.run(run_demo(data_dir=folder, broker=("127.0.0.1", port), readings=readings,
                                  interval_s=interval_s, out=lambda _line: None))
    return result.ack_latencies_s


def describe(name: str, latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"{name:<26} p50 {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   ({len(ms)} readings)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between simulated readings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the demo's plain-TCP warning is expected here
    shipped = protocol.mqtt._send_without_delay
    with tempfile.TemporaryDirectory(prefix="dho-bench-latency-") as tmp, mosquitto(Path(tmp)) as port:
        protocol.mqtt._send_without_delay = lambda _client: None  # type: ignore[assignment]
        try:
            nagle = measure(port, Path(tmp) / "nagle", args.readings, args.interval)
        finally:
            protocol.mqtt._send_without_delay = shipped
        nodelay = measure(port, Path(tmp) / "nodelay", args.readings, args.interval)
    print("reading stored -> central ack, real Mosquitto on loopback:")
    print(describe("baseline (Nagle on)", nagle))
    print(describe("TCP_NODELAY (shipped)", nodelay))
    print(f"ratio p50 baseline / shipped: {statistics.median(nagle) / statistics.median(nodelay):.1f}x")


if __name__ == "__main__":
    main()
