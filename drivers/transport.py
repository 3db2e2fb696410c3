"""Connection sessions with bleak: the one drivers module that talks to a radio.

A session: connect (with retry and jittered backoff), read battery and device information, subscribe
to the measurement characteristic, write the device's clock, then take what the device sends — or, for
devices with a record store, ask for it through the Record Access Control Point and delete it on the
device only after every record was delivered (stored by the gateway). A link lost halfway loses
nothing: the device still holds the records and sends them again; identity comes from the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

from drivers import uuids
from drivers.device_info import decode_battery, decode_string, encode_current_time
from drivers.glucose import decode_glucose
from drivers.measurement import DecodeError, DeviceFlag
from drivers.profiles import DeviceProfile
from drivers.pulse_oximeter import decode_continuous

log = logging.getLogger(__name__)

Deliver = Callable[[str, str, bytes], Awaitable[object]]
ClientFactory = Callable[[str, Callable[[BleakClient], None]], BleakClient]

RACP_REPORT_ALL = bytes([0x01, 0x01])
RACP_DELETE_ALL = bytes([0x02, 0x01])
_RACP_RESPONSE = 0x06
_RACP_SUCCESS, _RACP_NO_RECORDS = 0x01, 0x06
_DOUBTFUL = frozenset({DeviceFlag.PROVISIONAL, DeviceFlag.QUESTIONABLE_MEASUREMENT, DeviceFlag.POOR_SIGNAL,
                       DeviceFlag.LOW_PERFUSION})


class SessionError(RuntimeError):
    """A session ended before it finished; what was delivered before it stays delivered."""


@dataclass
class SessionReport:
    address: str
    delivered: int = 0
    battery: int | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    clock_written: bool = False
    records_deleted: bool = False
    last_sequence: int | None = None  # the highest record sequence number delivered (glucose)
    complete: bool = False
    problems: list[str] = field(default_factory=list)


async def connect_with_retry(
    make: Callable[[], BleakClient], *, attempts: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
) -> BleakClient:
    """Connect, trying again with jittered exponential backoff: after a gateway restart or a power cut
    many devices must not be retried in lockstep."""
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        client = make()
        try:
            await client.connect()
            return client
        except (BleakError, TimeoutError, OSError) as exc:
            if attempt == attempts:
                raise SessionError(f"could not connect after {attempts} attempts: {exc}") from exc
            wait = delay * random.uniform(0.5, 1.0)
            log.info("connect attempt %d failed (%s); next in %.1f s", attempt, exc, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, max_backoff_s)
    raise AssertionError("unreachable")


def _find(client: BleakClient, uuid: str) -> BleakGATTCharacteristic | None:
    return client.services.get_characteristic(uuid) if client.services else None


class Session:
    def __init__(self, client: BleakClient, profile: DeviceProfile, deliver: Deliver, *,
                 clock: Callable[[], datetime], idle_s: float = 5.0, racp_timeout_s: float = 30.0,
                 last_sequence: int | None = None) -> None:
        self.client = client
        self.profile = profile
        self.deliver = deliver
        self.clock = clock
        self.idle_s = idle_s
        self.racp_timeout_s = racp_timeout_s
        self.report = SessionReport(client.address, last_sequence=last_sequence)
        self._values: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._racp: asyncio.Queue[bytes] = asyncio.Queue()

    def _on_value(self, characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
        self._values.put_nowait((characteristic.uuid, bytes(data)))

    def _on_racp(self, _characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
        self._racp.put_nowait(bytes(data))

    async def _read_info(self) -> None:
        for uuid, attribute in ((uuids.MODEL_NUMBER, "model"), (uuids.SERIAL_NUMBER, "serial"),
                                (uuids.FIRMWARE_REVISION, "firmware")):
            if _find(self.client, uuid) is not None:
                with contextlib.suppress(BleakError, DecodeError):
                    raw = bytes(await self.client.read_gatt_char(uuid))
                    setattr(self.report, attribute, decode_string(raw, attribute))
        if _find(self.client, uuids.BATTERY_LEVEL) is not None:
            try:
                self.report.battery = decode_battery(bytes(await self.client.read_gatt_char(uuids.BATTERY_LEVEL)))
            except (BleakError, DecodeError) as exc:
                self.report.problems.append(f"battery: {exc}")

    async def _write_clock(self) -> None:
        if self.profile.time is None or _find(self.client, self.profile.time) is None:
            return
        # The device's own clock first: it dates the records it is about to send (read before we set it).
        with contextlib.suppress(BleakError):
            before = bytes(await self.client.read_gatt_char(self.profile.time))
            await self.deliver(self.client.address, self.profile.time, before)
        now = self.clock()
        value = encode_current_time(now)
        if self.profile.time == uuids.DATE_TIME:
            value = value[:7]  # A&D's Date Time: no day of week, fractions or adjust reason
        try:
            await self.client.write_gatt_char(self.profile.time, value, response=True)
            self.report.clock_written = True
        except BleakError as exc:
            self.report.problems.append(f"clock not written: {exc}")

    async def _deliver_one(self, characteristic: str, data: bytes) -> None:
        await self.deliver(self.client.address, characteristic, data)
        self.report.delivered += 1
        if self.profile.sequence_numbers:
            with contextlib.suppress(DecodeError):
                sequence = decode_glucose(data).sequence
                self.report.last_sequence = max(sequence, self.report.last_sequence or 0)

    async def run(self) -> SessionReport:
        if _find(self.client, self.profile.measurement) is None:
            raise SessionError(f"{self.client.address} has no {self.profile.measurement[4:8]} characteristic: "
                               f"is it the device provisioned as {self.profile.name}?")
        await self._read_info()
        await self.client.start_notify(self.profile.measurement, self._on_value)
        if self.profile.record_access and _find(self.client, uuids.RECORD_ACCESS_CONTROL_POINT) is not None:
            await self.client.start_notify(uuids.RECORD_ACCESS_CONTROL_POINT, self._on_racp)
            await self._write_clock()
            await self._fetch_records()
        else:
            await self._write_clock()
            await self._take_until_quiet()
        return self.report

    async def _take_until_quiet(self) -> None:
        """Deliver what the device sends until it disconnects or stays quiet for `idle_s`. A continuous
        oximeter streams about once a second while the finger is in: storing every value would flood the
        outbox and the history, so one reading is kept per session, the last one the device did not
        call provisional or doubtful (or the very last, which then asks the patient to measure again)."""
        last: tuple[str, bytes] | None = None
        last_good: tuple[str, bytes] | None = None
        while self.client.is_connected or not self._values.empty():
            try:
                async with asyncio.timeout(self.idle_s):
                    characteristic, data = await self._next_value()
            except TimeoutError:
                break
            if not self.profile.continuous:
                await self._deliver_one(characteristic, data)
                continue
            last = (characteristic, data)
            with contextlib.suppress(DecodeError):
                if not decode_continuous(data).flags & _DOUBTFUL:
                    last_good = last
        chosen = last_good or last
        if self.profile.continuous and chosen is not None:
            await self._deliver_one(*chosen)
        self.report.complete = True

    async def _next_value(self) -> tuple[str, bytes]:
        while True:
            if not self._values.empty():
                return self._values.get_nowait()
            if not self.client.is_connected:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    return await self._values.get()

    async def _racp_request(self, request: bytes) -> int:
        await self.client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT, request, response=True)
        async with asyncio.timeout(self.racp_timeout_s):
            while True:
                # Records arrive before the response; deliver them in order while waiting.
                while not self._values.empty():
                    await self._deliver_one(*self._values.get_nowait())
                if not self.client.is_connected:
                    raise SessionError("the link was lost during the record transfer")
                response = b""
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        response = await self._racp.get()
                # Delivering is outside the 50 ms poll: a store taking longer must not be cancelled halfway.
                if len(response) >= 4 and response[0] == _RACP_RESPONSE and response[2] == request[0]:
                    while not self._values.empty():
                        await self._deliver_one(*self._values.get_nowait())
                    return response[3]

    async def _fetch_records(self) -> None:
        request = RACP_REPORT_ALL
        if self.profile.sequence_numbers and self.report.last_sequence is not None:
            # "Records since the last one we have": operator >=, filter type 1 (sequence number).
            request = bytes([0x01, 0x03, 0x01]) + ((self.report.last_sequence + 1) & 0xFFFF).to_bytes(2, "little")
        code = await self._racp_request(request)
        if code == _RACP_NO_RECORDS:
            self.report.complete = True
            return
        if code != _RACP_SUCCESS:
            raise SessionError(f"the device refused to report its records (RACP response {code})")
        # Every record is stored by now (deliver returns after the commit): only now may the device forget.
        if self.profile.delete_after_transfer and await self._racp_request(RACP_DELETE_ALL) == _RACP_SUCCESS:
            self.report.records_deleted = True
        self.report.complete = True


async def run_session(client: BleakClient, profile: DeviceProfile, deliver: Deliver, **kwargs: Any) -> SessionReport:
    session = Session(client, profile, deliver, **kwargs)
    try:
        return await session.run()
    except (BleakError, SessionError) as exc:
        session.report.problems.append(str(exc))
        raise SessionError(f"{client.address}: {exc} ({session.report.delivered} value(s) delivered before)") from exc
    finally:
        with contextlib.suppress(BleakError, asyncio.TimeoutError):
            await client.disconnect()
