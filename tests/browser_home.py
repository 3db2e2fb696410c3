"""A patient's home for the browser tests: simulated BLE devices (bumble) read by the gateway's BLE
source through bleak, the whole gateway (`Gateway.run`, pages included) and the reference central
receiver on a real Mosquitto, all in one asyncio loop on a thread of their own, so the test can drive a
real browser (Playwright's sync API) from the main thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from central.embedded import EmbeddedCentral
from drivers.measurement import MeasurementKind
from gateway.ble import BleBackends, BleDeviceSource
from gateway.plans import load_advice, load_profile
from gateway.service import Gateway
from gateway.settings import build_settings
from gateway.web import hash_password
from hardware_sims.bleak_backend import BumbleClient, BumbleScanner
from hardware_sims.gatt_devices import BloodPressureCuff, GattDevice, PulseOximeter, Scale
from hardware_sims.radio import VirtualRadio
from protocol import BrokerSettings, WireReading
from zoning import Plan, Profile

TECHNICIAN_PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(TECHNICIAN_PASSWORD)
SCALE_USER = 1
T = TypeVar("T")


def copd_and_heart_failure_plan() -> Plan:
    """A patient with both COPD and heart failure: the COPD profile's rules and questionnaire, and the
    heart-failure profile's weight rules (so an ordinary weighing is green, not unassessed)."""
    copd, hf = load_profile("standard-copd"), load_profile("standard-heart-failure")
    weight = MeasurementKind.BODY_WEIGHT
    profile = Profile(id="test-copd-hf", version=1, title="COPD with heart failure (test)",
                      rules=(*copd.rules, *(r for r in hf.rules if r.kind == weight)),
                      trends=(*copd.trends, *(r for r in hf.trends if r.kind == weight)),
                      consecutive=(*copd.consecutive, *(r for r in hf.consecutive if r.kind == weight)),
                      symptoms=copd.symptoms)
    return Plan(id=profile.id, version=1, profile=profile, advice=load_advice(), enrolled=date(2026, 1, 1))


class Home:
    def __init__(self, tmp_path: Path, broker_port: int, *, scale_battery: int = 15) -> None:
        self.tmp_path = tmp_path
        self.broker_port = broker_port
        self.scale_battery = scale_battery
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._main: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="home", daemon=True)
        self.central = EmbeddedCentral(BrokerSettings(host="127.0.0.1", port=broker_port, insecure_dev=True),
                                       tmp_path / "central.sqlite3", identifier="central-web-test")
        self.central.provision("gw-web-test", tenant="t-test", patient="p-web-test")

    # -- the home's own thread ----------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start_and_run())
        except BaseException as exc:
            self.failed = exc
            self.ready.set()

    async def _start_and_run(self) -> None:
        self._main = asyncio.current_task()
        self.radio = VirtualRadio()
        self.oximeter = PulseOximeter(self.radio)
        self.scale = Scale(self.radio, battery=self.scale_battery)
        self.cuff = BloodPressureCuff(self.radio)
        for device in (self.oximeter, self.scale, self.cuff):
            await device.power_on()
        mqtt = BrokerSettings(host="127.0.0.1", port=self.broker_port, insecure_dev=True)
        settings = build_settings({
            "gateway": {"id": "gw-web-test", "tenant": "t-test", "patient": "p-web-test",
                        "data_dir": str(self.tmp_path / "gateway")},
            "mqtt": mqtt.model_dump(),
            "sync": {"ack_timeout_s": 5},
            "web": {"port": 0, "technician_password_hash": PASSWORD_HASH},
            "devices": [
                {"address": self.oximeter.address, "kind": "spo2", "model": self.oximeter.model,
                 "serial": self.oximeter.serial},
                {"address": self.scale.address, "kind": "body_weight", "model": self.scale.model,
                 "serial": self.scale.serial, "user": SCALE_USER},
                {"address": self.cuff.address, "kind": "blood_pressure", "model": self.cuff.model,
                 "serial": self.cuff.serial},
            ],
        })
        source = BleDeviceSource(settings.devices, backends=BleBackends(BumbleScanner, BumbleClient,
                                                                         {"radio": self.radio}),
                                 idle_s=1.0, retry_base_s=0.05, retry_max_s=0.5)
        self.gateway = Gateway(settings, source)
        self.gateway.pipeline.use_plan(copd_and_heart_failure_plan())
        central = self.central
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(central.run())
            async with asyncio.timeout(15):
                await central.ready.wait()
            tasks.create_task(self.gateway.run())
            assert self.gateway.web is not None
            async with asyncio.timeout(15):
                await self.gateway.web.ready.wait()
                while source.watchdog.last_advertisement is None:  # scanning: a measurement will be heard
                    await asyncio.sleep(0.02)
            self.ready.set()

    # -- from the test's thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(30) or self.failed is not None:
            raise RuntimeError(f"the home did not start: {self.failed!r}")

    def stop(self) -> None:
        if self._main is not None:
            self.loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(15)
        self.central.close()

    @property
    def url(self) -> str:
        assert self.gateway.web is not None and self.gateway.web.address is not None
        return self.gateway.web.address

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def measure(self, device: GattDevice, take: Callable[[], Coroutine[Any, Any, object]],
                counter: str = "stored", timeout: float = 60.0) -> None:
        """The patient measures; returns once the gateway has the value (`counter` went up). A session that
        hangs on the simulated radio (seen on a loaded machine: a link the device thinks is open) is
        nudged the way a real device's link supervision timeout would: the link drops, the device
        advertises again, and the gateway connects anew."""
        counts = self.gateway.pipeline.counts
        before = counts[counter]
        self.call(take())
        deadline = time.monotonic() + timeout
        nudge = time.monotonic() + 10
        while counts[counter] == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{device.kind}: the gateway did not get the value in {timeout:.0f} s")
            if time.monotonic() > nudge:
                self.call(device.drop_link())
                nudge = time.monotonic() + 10
            time.sleep(0.05)

    def central_readings(self) -> list[WireReading]:
        return self.central.readings()


@contextlib.contextmanager
def running_home(tmp_path: Path, broker_port: int, **options: Any) -> Iterator[Home]:
    home = Home(tmp_path, broker_port, **options)
    home.start()
    try:
        yield home
    finally:
        home.stop()
