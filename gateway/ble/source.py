"""The Bluetooth LE device source: scan, and run a session with each provisioned device that
advertises. Production uses bleak's BlueZ backend; tests and technicians pass the bumble backend.

- Only provisioned addresses count: any other device is ignored and counted (a neighbour's scale must
  never write into this patient's record).
- A device is connected when it advertises (after a measurement), not polled: its battery lasts.
- One session per device at a time; one device's failure never stops the others; a device that fails
  again and again is retried with jittered, growing pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from drivers import Deliver, DeviceQuirks, SessionError, SessionReport, connect, quirks_for, run_session
from gateway.ble.backends import BleBackends, Listener, listening_to
from gateway.ble.bluez import BondRecovery, ScanWatchdog
from gateway.ble.nearby import BluezRadio, PairingRadio
from gateway.errors import GatewayError
from gateway.settings import DeviceSection
from protocol import Backoff, DeviceStatus

log = logging.getLogger(__name__)


class BluetoothUnavailable(GatewayError):
    """No Bluetooth on this machine as configured (no BlueZ, no adapter): one line, then retried."""


@dataclass
class DeviceState:
    profile: DeviceQuirks
    failures: int = 0
    not_before: float = 0.0  # monotonic time before which the device is not retried
    battery: int | None = None
    last_seen: float | None = None
    last_seen_at: datetime | None = None
    last_report: SessionReport | None = None
    sessions: int = 0
    last_sequence: int | None = None  # record sequence numbers already stored (RACP ">=" next time)
    ble_device: BLEDevice | None = None  # as last heard advertising: what a BlueZ connection starts from


class BleDeviceSource:
    """The production device source (gateway.service's `DeviceSource` interface): it reports its devices,
    counts the unprovisioned addresses it hears, and scans all the time (no scan on request)."""

    reports_devices = True
    scans_on_request = True  # the pairing scan (gateway.ble.pairing_scan) through its radio

    def __init__(self, devices: list[DeviceSection], *, backends: BleBackends | None = None,
                 timezone: str = "Europe/Oslo", connect_timeout_s: float = 20.0, idle_s: float = 5.0,
                 retry_base_s: float = 5.0, retry_max_s: float = 600.0, racp_timeout_s: float = 30.0,
                 watchdog: ScanWatchdog | None = None, watchdog_interval_s: float = 30.0,
                 reset_adapter: Callable[[], Awaitable[None]] | None = None,
                 platform: Callable[[dict[str, int | None]], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
                 ) -> None:
        self.devices = {d.address: DeviceState(quirks_for(d.kind.value, d.profile)) for d in devices}
        self.provisioned = {d.address: d for d in devices}
        self.passkeys = {d.address: d.passkey for d in devices}
        self.backends = backends or BleBackends()
        self.zone = ZoneInfo(timezone)
        self.connect_timeout_s = connect_timeout_s
        self.idle_s = idle_s
        self.retry = Backoff(retry_base_s, retry_max_s)
        self.racp_timeout_s = racp_timeout_s
        self.watchdog = watchdog or ScanWatchdog()
        self.watchdog_interval_s = watchdog_interval_s
        self.reset_adapter = reset_adapter
        self.bonds = BondRecovery()
        self.platform = platform  # BlueZ: registers the pairing agent, returns the adapter reset
        self.scan_restarts = 0
        self.adapter_resets = 0
        self.unprovisioned: Counter[str] = Counter()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._deliver: Deliver | None = None
        self._adverts: dict[str, asyncio.Queue[bytes]] = {}
        self.listeners: list[Listener] = []  # a technician's pairing scan, hearing this source's scan

    def _clock(self) -> datetime:
        # Devices keep local wall-clock time without a zone (GATT Date Time).
        return datetime.now(self.zone).replace(tzinfo=None)

    def _client(self, address: str) -> Callable[[], BleakClient]:
        pair = self.devices[address].profile.requires_pairing

        def make() -> BleakClient:
            return BleakClient(address, timeout=self.connect_timeout_s, pair=pair, backend=self.backends.client,
                               **self.backends.options)
        return make

    def _seen(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        self.watchdog.seen(time.monotonic())
        for listener in list(self.listeners):
            listener(device, advertisement)
        address = device.address.upper()
        state = self.devices.get(address)
        if state is None:
            self.unprovisioned[address] += 1
            return
        state.last_seen = time.monotonic()
        state.last_seen_at = datetime.now(UTC)
        state.ble_device = device
        if state.profile.advertised:
            self._advertised(address, state, advertisement)
            return
        if address in self._running or time.monotonic() < state.not_before:
            return
        self._running[address] = asyncio.get_running_loop().create_task(self._session(address, state))

    def _advertised(self, address: str, state: DeviceState, advertisement: AdvertisementData) -> None:
        data = advertisement.service_data.get(state.profile.measurement)
        if data is None or self._deliver is None:
            return
        # In order, one at a time per device: the same weighing is advertised many times.
        queue = self._adverts.setdefault(address, asyncio.Queue())
        queue.put_nowait(data)
        if address not in self._running:
            self._running[address] = asyncio.get_running_loop().create_task(self._drain_adverts(address, queue))

    async def _drain_adverts(self, address: str, queue: asyncio.Queue[bytes]) -> None:
        assert self._deliver is not None
        try:
            while not queue.empty():
                await self._deliver(address, self.devices[address].profile.measurement, queue.get_nowait())
        finally:
            del self._running[address]

    async def _session(self, address: str, state: DeviceState) -> None:
        assert self._deliver is not None and state.ble_device is not None
        try:
            client = await connect(state.ble_device, state.profile, timeout_s=self.connect_timeout_s,
                                   backend=self.backends.client, **self.backends.options)
            state.sessions += 1
            report = await run_session(client, state.profile, self._deliver, clock=self._clock, idle_s=self.idle_s,
                                       racp_timeout_s=self.racp_timeout_s, last_sequence=state.last_sequence)
            state.last_report, state.battery = report, report.battery
            state.last_sequence = report.last_sequence
            self.bonds.paired(address)
            log.info("device %s: %d value(s), battery %s %%", address, report.delivered, report.battery)
            if report.not_stored:
                # The gateway could not commit them (outbox unavailable): the device keeps them. Come back
                # for them after growing pauses, not at every advertisement.
                state.failures += 1
                state.not_before = time.monotonic() + self.retry.delay(state.failures)
            else:
                state.failures = 0
        except (SessionError, TimeoutError) as exc:
            if self.bonds.failed(address, str(exc)):
                await self._forget_bond(address)
            state.failures += 1
            pause = self.retry.delay(state.failures)
            state.not_before = time.monotonic() + pause
            log.warning("device %s: %s; next try in %.0f s at the earliest", address, exc, pause)
        except Exception:
            # One device's bug must not stop the others: log it, keep scanning.
            state.failures += 1
            log.exception("device %s: session failed", address)
        finally:
            del self._running[address]

    def device_status(self) -> list[DeviceStatus]:
        return [
            DeviceStatus(id=self.provisioned[address].serial or address, kind=self.provisioned[address].kind.value,
                         battery=state.battery, last_seen=state.last_seen_at,
                         needs_pairing=address in self.bonds.needs_pairing)
            for address, state in self.devices.items()
        ]

    async def pairing_radio(self) -> PairingRadio | None:
        """Its own radio (BlueZ on the box): the technician's pairing scan hears the source's own scan (it
        starts no second discovery: `ListeningScanner`); pairing answers through its platform's agent."""
        return BluezRadio(BleBackends(listening_to(self.listeners), self.backends.client, self.backends.options),
                          agent=self.platform)

    def unprovisioned_heard(self) -> Mapping[str, int]:
        """Addresses heard advertising that are not provisioned, and how often (ignored otherwise)."""
        return self.unprovisioned

    def listed_devices(self) -> list[tuple[str, str]]:
        """None: a radio names only what it hears (`unprovisioned_heard`, `device_status`)."""
        return []

    async def _forget_bond(self, address: str) -> None:
        log.warning("device %s: authentication failed with its old bond; bond removed: put the device in "
                    "pairing mode to pair it again", address)
        with contextlib.suppress(Exception):
            await self._client(address)().unpair()

    async def _watch(self, scanner: BleakScanner) -> None:
        """BlueZ scanning can stop without a word: restart it, then reset the adapter (docs/ble.md)."""
        self.watchdog.started(time.monotonic())
        while True:
            await asyncio.sleep(self.watchdog_interval_s)
            action = self.watchdog.check(time.monotonic())
            if action == "ok":
                continue
            if action == "reset_adapter" and self.reset_adapter is not None:
                log.error("no advertisement for %.0f s even after restarting the scan: resetting the adapter",
                          self.watchdog.quiet_s)
                self.adapter_resets += 1
                await self.reset_adapter()
            else:
                log.warning("no advertisement for %.0f s: restarting the scan", self.watchdog.quiet_s)
            self.scan_restarts += 1
            with contextlib.suppress(Exception):
                await scanner.stop()
            await scanner.start()

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Wait (at most `timeout_s`) for the sessions under way to end by themselves: a stop then
        cancels nothing in the middle of a GATT exchange."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._running:
                    await asyncio.wait(list(self._running.values()))

    async def run(self, deliver: Deliver) -> None:
        self._deliver = deliver
        platform_failure: str | None = None
        if self.platform is not None:
            try:
                self.reset_adapter = await self.platform(self.passkeys)
            except Exception as exc:  # scanning may still work (only pairing would not): try it
                platform_failure = f"{type(exc).__name__}: {exc}"
        scanner = BleakScanner(self._seen, backend=self.backends.scanner, **self.backends.options)
        try:
            await scanner.start()
        except Exception as exc:
            cause = platform_failure or f"{type(exc).__name__}: {exc}"
            raise BluetoothUnavailable(f"BlueZ cannot be reached, so no device can be read ({cause}): is "
                                       "bluetoothd running and the Bluetooth adapter present?") from exc
        if platform_failure is not None:
            log.error("BlueZ set-up failed (%s): devices that need pairing cannot pair", platform_failure)
        watch = asyncio.get_running_loop().create_task(self._watch(scanner))
        try:
            await asyncio.Event().wait()  # sessions start from advertisements
        finally:
            watch.cancel()
            await scanner.stop()
            for task in list(self._running.values()):
                task.cancel()
