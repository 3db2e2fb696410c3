"""Pages benchmark: reading stored -> visible in a real browser, and the memory the pages add.

    .venv/bin/python bench/web.py [--readings 60] [--settle 6]

Latency: a gateway (Gateway.run, pages included) with a device source fed by this script; Debian's
chromium (Playwright) shows the patient's page. For each blood pressure value sent, the time from the
pipeline's listener (called right after the outbox commit) to the moment the page swapped in the new
card (Date.now() in the page), p50/p99, against the baseline of a plain fetch of /api/patient from
the same page measured in the same run (the ratio is what waiting for the change and redrawing add),
and against the goal of 0.5 s.

Memory: `dho-gateway run` started twice with the same configuration, pages on and off; the RSS of each
after `--settle` seconds (the page loaded once by chromium when on). The ratio is what the pages add.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent.parent))

import psutil
from playwright.sync_api import sync_playwright

from drivers.uuids import BLOOD_PRESSURE_MEASUREMENT
from gateway.demo import free_port
from gateway.service import BaseDeviceSource, Gateway
from gateway.settings import build_settings
from hardware_sims.blood_pressure import BloodPressureMonitor, CuffResult

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
GOAL_S = 0.5


class FedSource(BaseDeviceSource):
    """A device source the benchmark feeds: one simulated cuff, values when asked."""

    def __init__(self) -> None:
        self.monitor = BloodPressureMonitor(address="F0:5E:1A:00:00:01")
        self.queue: asyncio.Queue[CuffResult] = asyncio.Queue()

    async def run(self, sink: Any) -> None:
        while True:
            result = await self.queue.get()
            clock = datetime.now(ZoneInfo("Europe/Oslo")).replace(tzinfo=None, microsecond=0)
            await sink(self.monitor.address, BLOOD_PRESSURE_MEASUREMENT, self.monitor.measurement(result, clock))


def settings(data_dir: Path, *, web: bool, port: int) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-bench", "tenant": "bench", "patient": "p-bench", "data_dir": str(data_dir)},
        # Nothing listens here: the uplink keeps retrying, which is what a box offline does.
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "insecure_dev": True},
        "web": {"enabled": web, "port": port},
        "device_source": "simulated-home",
        "devices": [{"address": "F0:5E:1A:00:00:01", "kind": "blood_pressure", "serial": "SIMBPM0001"}],
    }


def latency(readings: int) -> tuple[list[float], list[float]]:
    stored: list[float] = []
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def run_gateway(tmp: Path) -> None:
        source = FedSource()
        gateway = Gateway(build_settings(settings(tmp, web=True, port=0)), source)
        gateway.pipeline.readings.subscribe(lambda _r, _a: stored.append(time.time()))
        state.update(loop=asyncio.get_running_loop(), source=source, gateway=gateway, task=asyncio.current_task())
        task = asyncio.get_running_loop().create_task(gateway.run())
        state["gateway_task"] = task
        assert gateway.web is not None
        await gateway.web.ready.wait()
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with tempfile.TemporaryDirectory() as tmp:
        thread = threading.Thread(target=lambda: asyncio.run(run_gateway(Path(tmp))), daemon=True)
        thread.start()
        ready.wait(30)
        gateway, source, loop = state["gateway"], state["source"], state["loop"]
        shown_at: list[float] = []
        fetches: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(bypass_csp=True)  # wait_for_function evaluates strings; no cost to measure
            page.goto(gateway.web.address)
            page.wait_for_function("window.__dhoShown !== undefined")
            for i in range(readings):
                seen = len(page.evaluate("window.__dhoShown"))
                page.wait_for_timeout(50)  # the page is waiting on its long poll again
                result = CuffResult(systolic=120 + i % 30, diastolic=80, pulse=70)
                loop.call_soon_threadsafe(source.queue.put_nowait, result)
                page.wait_for_function(f"window.__dhoShown.length > {seen}", timeout=10_000)
                shown_at.append(page.evaluate("window.__dhoShown[window.__dhoShown.length - 1].at") / 1000)
                fetches.append(page.evaluate(
                    "(async () => { const t = performance.now(); await (await fetch('/api/patient')).json();"
                    " return performance.now() - t; })()") / 1000)
            browser.close()
        loop.call_soon_threadsafe(state["gateway_task"].cancel)
        thread.join(10)
    return [shown - stored_at for shown, stored_at in zip(shown_at, stored, strict=True)], fetches


def rss_of_run(web: bool, settle_s: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "gateway.toml"
        s = settings(Path(tmp), web=web, port=port)
        lines = ['device_source = "simulated-home"']
        for section in ("gateway", "mqtt", "web"):
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml(v)}" for k, v in s[section].items()]
        lines += ["[[devices]]", *(f"{k} = {_toml(v)}" for k, v in s["devices"][0].items())]
        config.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen([sys.executable, "-m", "gateway.service.cli", "run", "--config", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            started = time.monotonic()
            while web and time.monotonic() - started < 30:  # until the pages listen
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.05)
            time.sleep(settle_s / 2)
            if web:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{port}/")
                    page.wait_for_selector(".card")
                    browser.close()
            time.sleep(settle_s / 2)
            return int(psutil.Process(process.pid).memory_info().rss)
        finally:
            process.terminate()
            process.wait(10)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else f'"{value}"'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=60)
    parser.add_argument("--settle", type=float, default=6.0)
    args = parser.parse_args()

    shown, fetch = latency(args.readings)
    q = statistics.quantiles(shown, n=100, method="inclusive") if len(shown) > 1 else shown * 99
    f = statistics.quantiles(fetch, n=100, method="inclusive") if len(fetch) > 1 else fetch * 99
    print(f"reading stored -> visible in chromium ({len(shown)} readings): p50 {q[49] * 1000:.1f} ms, "
          f"p99 {q[98] * 1000:.1f} ms; baseline fetch /api/patient p50 {f[49] * 1000:.1f} ms; "
          f"ratio p50 {q[49] / f[49]:.2f}; p99 against the 0.5 s goal: ratio {q[98] / GOAL_S:.3f}")
    without = rss_of_run(False, args.settle)
    with_web = rss_of_run(True, args.settle)
    print(f"RSS of `dho-gateway run`: without pages {without / 2**20:.1f} MiB, with pages {with_web / 2**20:.1f} MiB "
          f"(+{(with_web - without) / 2**20:.1f} MiB); ratio {with_web / without:.2f}")


if __name__ == "__main__":
    main()
