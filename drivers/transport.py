"""Connection sessions with bleak: the one drivers module that talks to a radio.

A session: connect (bleak-retry-connector: stale connections closed first, BlueZ's transient errors
retried, the service cache used while it is valid), read battery and device information, subscribe to
the measurement characteristic, write the device's clock, then take what the device sends — or, for
devices with a record store, ask for it through the Record Access Control Point and delete it on the
device only after every record fetched was committed by the gateway (`Delivery.STORED`). A link lost
halfway loses nothing: the device still holds the records and sends them again; identity comes from
the bytes. Which value of a continuous oximeter's stream is kept, and which glucose records are
asked for, are decided in `continuous_oximetry.py` and `glucose_sequence.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
from bleak_retry_connector import BleakClientWithServiceCache, close_stale_connections, establish_connection

from drivers import uuids
from drivers.continuous_oximetry import ContinuousSelection
from drivers.delivery import Deliver, Delivery
from drivers.device_info import decode_battery, decode_string, encode_current_time
from drivers.glucose_sequence import RACP_REPORT_ALL, SequenceTracker
from drivers.measurement import DecodeError
from drivers.quirks import DeviceQuirks

log = logging.getLogger(__name__)

RACP_DELETE_ALL = bytes([0x02, 0x01])
RACP_COUNT_ALL = bytes([0x04, 0x01])  # report the number of stored records: all
_RACP_RESPONSE, _RACP_COUNT = 0x06, 0x05
_RACP_SUCCESS, _RACP_NO_RECORDS = 0x01, 0x06
_POLL_S = 0.05  # how often a wait looks at the link again


class SessionError(RuntimeError):
    """A session ended before it finished; what was delivered before it stays delivered."""


@dataclass
class SessionReport:
    """What one session did: values delivered (and how many not stored), what it read of the device, problems."""

    address: str
    delivered: int = 0
    battery: int | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    clock_written: bool = False
    records_deleted: bool = False
    not_stored: int = 0  # values the gateway could not commit: left on a device with a memory
    last_sequence: int | None = None  # every record up to this sequence number is stored (glucose)
    complete: bool = False
    problems: list[str] = field(default_factory=list)


async def connect(device: BLEDevice, quirks: DeviceQuirks, *, timeout_s: float, attempts: int = 2,
                  **client_options: Any) -> BleakClient:
    """Connect the way Home Assistant does on BlueZ (bleak-retry-connector).

    Close a connection BlueZ still holds from before (a gateway restart), retry BlueZ's transient errors (out
    of connection slots, operation in progress, a stale services cache) with the back-off each one needs.
    `client_options` go to bleak's client (e.g. `backend=` and its arguments for the simulator).
    """
    try:
        await close_stale_connections(device)
        return await establish_connection(
            BleakClientWithServiceCache, device, device.name or device.address, max_attempts=attempts,
            pair=quirks.requires_pairing, timeout=timeout_s, **client_options,
        )
    except (BleakError, TimeoutError, OSError) as exc:
        raise SessionError(f"could not connect: {exc}") from exc


def _find(client: BleakClient, uuid: str) -> BleakGATTCharacteristic | None:
    return client.services.get_characteristic(uuid) if client.services else None


class Session:
    """One connection to one device: reads its facts, writes its clock, hands every value to `deliver`.

    Stored records are fetched through the RACP where the device has one and deleted on the device only
    once every one of them is stored. `clock` is the gateway's time to write; `idle_s` and
    `racp_timeout_s` are in seconds.
    """

    def __init__(self, client: BleakClient, quirks: DeviceQuirks, deliver: Deliver, *,
                 clock: Callable[[], datetime], idle_s: float = 5.0, racp_timeout_s: float = 30.0,
                 last_sequence: int | None = None) -> None:
        self.client = client
        self.quirks = quirks
        self.deliver = deliver
        self.clock = clock
        self.idle_s = idle_s
        self.racp_timeout_s = racp_timeout_s
        self.report = SessionReport(client.address, last_sequence=last_sequence)
        self.sequence = SequenceTracker(last_sequence) if quirks.sequence_numbers else None
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
        if self.quirks.time is None or _find(self.client, self.quirks.time) is None:
            return
        # The device's own clock first: it dates the records it is about to send (read before we set it).
        with contextlib.suppress(BleakError):
            before = bytes(await self.client.read_gatt_char(self.quirks.time))
            await self.deliver(self.client.address, self.quirks.time, before)
        now = self.clock()
        value = encode_current_time(now)
        if self.quirks.time == uuids.DATE_TIME:
            value = value[:7]  # A&D's Date Time: no day of week, fractions or adjust reason
        try:
            await self.client.write_gatt_char(self.quirks.time, value, response=True)
            self.report.clock_written = True
        except BleakError as exc:
            self.report.problems.append(f"clock not written: {exc}")

    async def _deliver_one(self, characteristic: str, data: bytes) -> Delivery:
        outcome = await self.deliver(self.client.address, characteristic, data)
        self.report.delivered += 1
        if not outcome.device_may_forget:
            self.report.not_stored += 1
        if self.sequence is not None:
            self.sequence.delivered(data, outcome)
            self.report.last_sequence = self.sequence.last
        return outcome

    async def run(self) -> SessionReport:
        """Run the session until the device disconnects or stays quiet, and return its report.

        Raises `SessionError` when the device lacks the measurement characteristic of its quirks; bleak's
        errors pass through.
        """
        if _find(self.client, self.quirks.measurement) is None:
            raise SessionError(f"{self.client.address} has no {self.quirks.measurement[4:8]} characteristic: "
                               f"is it the device provisioned as {self.quirks.name}?")
        await self._read_info()
        await self.client.start_notify(self.quirks.measurement, self._on_value)
        if self.quirks.record_access and _find(self.client, uuids.RECORD_ACCESS_CONTROL_POINT) is not None:
            await self.client.start_notify(uuids.RECORD_ACCESS_CONTROL_POINT, self._on_racp)
            await self._write_clock()
            await self._fetch_records()
        else:
            await self._write_clock()
            await self._take_until_quiet()
        return self.report

    async def _take_until_quiet(self) -> None:
        """Deliver what the device sends until it disconnects or stays quiet for `idle_s`.

        A continuous oximeter's stream gives one reading (continuous_oximetry.py).
        """
        selection = ContinuousSelection() if self.quirks.continuous else None
        while self.client.is_connected or not self._values.empty():
            try:
                async with asyncio.timeout(self.idle_s):
                    characteristic, data = await self._next_value()
            except TimeoutError:
                break
            if selection is None:
                await self._deliver_one(characteristic, data)
            else:
                selection.offer(characteristic, data)
        chosen = selection.choice() if selection is not None else None
        if chosen is not None:
            await self._deliver_one(*chosen)
        self.report.complete = True

    async def _next_value(self) -> tuple[str, bytes]:
        while True:
            if not self._values.empty():
                return self._values.get_nowait()
            if not self.client.is_connected:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_POLL_S):
                    return await self._values.get()

    async def _deliver_waiting(self) -> bool:
        delivered = False
        while not self._values.empty():
            await self._deliver_one(*self._values.get_nowait())
            delivered = True
        return delivered

    async def _racp_answer(self, op: int) -> bytes | None:
        """The device's answer to request `op`, if one comes within a poll interval.

        Only the wait on the queue is timed: a timeout must never cancel a reading on its way into the outbox
        (a cancelled commit would be stored without the pipeline knowing).
        """
        try:
            async with asyncio.timeout(_POLL_S):
                answer = await self._racp.get()
        except TimeoutError:
            return None
        if len(answer) >= 4 and answer[0] == _RACP_RESPONSE and answer[2] == op:
            return answer  # a response code
        if op == RACP_COUNT_ALL[0] and len(answer) >= 4 and answer[0] == _RACP_COUNT:
            return answer  # the number of stored records
        return None

    async def _racp_exchange(self, request: bytes) -> bytes:
        """Write a request and return the device's answer, delivering the records it sends meanwhile."""
        await self.client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT, request, response=True)
        loop = asyncio.get_running_loop()
        # The device must answer within racp_timeout_s of its last record; our own storing time is not its.
        deadline = loop.time() + self.racp_timeout_s
        while True:
            # Records arrive before the response; deliver them in order while waiting.
            if await self._deliver_waiting():
                deadline = loop.time() + self.racp_timeout_s
            if not self.client.is_connected:
                raise SessionError("the link was lost during the record transfer")
            answer = await self._racp_answer(request[0])
            if answer is not None:
                await self._deliver_waiting()  # the records sent just before the response
                return answer
            if loop.time() >= deadline:
                raise SessionError(f"the device did not answer the record request within {self.racp_timeout_s:g} s")

    async def _racp_request(self, request: bytes) -> int:
        """A request answered by a response code (RACP op code 06)."""
        return (await self._racp_exchange(request))[3]

    async def _nothing_new_since(self, fetched: int) -> bool:
        """RACP "delete all" deletes every record on the device, also one measured after the report.

        Ask how many it holds first. A device that cannot count keeps the old behaviour (deleting).
        """
        answer = await self._racp_exchange(RACP_COUNT_ALL)
        if answer[0] != _RACP_COUNT:
            return True
        held = int.from_bytes(answer[2:4], "little")
        if held > fetched:
            self.report.problems.append(f"the device holds {held} record(s), {fetched} were fetched: a new one "
                                        "came in during the transfer; nothing deleted, all fetched next time")
            return False
        return True

    async def _fetch_records(self) -> None:
        request = self.sequence.request() if self.sequence is not None else RACP_REPORT_ALL
        before = self.report.delivered
        code = await self._racp_request(request)
        fetched = self.report.delivered - before
        if code == _RACP_NO_RECORDS:
            self.report.complete = True
            return
        if code != _RACP_SUCCESS:
            raise SessionError(f"the device refused to report its records (RACP response {code})")
        if self.report.not_stored:
            # Held in memory only, or refused: the device keeps them and sends them again next time.
            self.report.problems.append(f"{self.report.not_stored} record(s) not yet stored by the gateway: "
                                        "left on the device for the next connection")
        elif (self.quirks.delete_after_transfer and await self._nothing_new_since(fetched)
              and await self._racp_request(RACP_DELETE_ALL) == _RACP_SUCCESS):
            # Every record fetched is committed to the outbox: only now may the device forget them.
            self.report.records_deleted = True
        self.report.complete = True


async def run_session(client: BleakClient, quirks: DeviceQuirks, deliver: Deliver, **kwargs: Any) -> SessionReport:
    """Run a `Session` on a connected client and disconnect it afterwards, whatever happened.

    Raises `SessionError` naming the device and how many values were delivered before (a BleakError
    becomes one); what was delivered stays delivered.
    """
    session = Session(client, quirks, deliver, **kwargs)
    try:
        return await session.run()
    except (BleakError, SessionError) as exc:
        session.report.problems.append(str(exc))
        raise SessionError(f"{client.address}: {exc} ({session.report.delivered} value(s) delivered before)") from exc
    finally:
        with contextlib.suppress(BleakError, asyncio.TimeoutError):
            await client.disconnect()
