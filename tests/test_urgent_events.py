"""A device's finding the nurse must hear of at once travels as an event, through the real runtime and
a real Mosquitto: a glucose meter's HI becomes a stored, flagged reading and a `glucose_out_of_range`
event on `up/events` that names the reading and carries no value."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt

from drivers import Deliver, uuids
from gateway.service import BaseDeviceSource, Gateway
from gateway.settings import build_settings
from protocol import BrokerSettings, Event, Topics, make_client
from tests.conftest import Mosquitto

METER = "F0:5E:1A:00:00:06"
# Glucose Measurement: flags 0x0E (concentration, mol/L, sensor status), sequence 9, base time, 33.3 mmol/L
# (333 x 10^-4 mol/L -> raw 0xC14D -> 4D C1), capillary blood from a finger, status b5: "HI".
HI = bytes.fromhex("0E 0900 EA070B18081E05 4DC1 11 2000")


class OneMeter(BaseDeviceSource):
    """A device source that hands over one value, as the BLE source would after a session."""

    def __init__(self) -> None:
        self.answers: list[object] = []

    async def run(self, sink: Deliver) -> None:
        self.answers.append(await sink(METER, uuids.GLUCOSE_MEASUREMENT, HI))
        await asyncio.Event().wait()


async def test_a_glucose_meter_hi_reaches_the_nurse_as_an_urgent_event(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = build_settings({
        "gateway": {"id": "gw-test-1", "tenant": "test-kommune", "patient": "p-test", "data_dir": str(tmp_path / "gw")},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "insecure_dev": True},
        "devices": [{"address": METER, "kind": "glucose"}],
    })
    source = OneMeter()
    gateway = Gateway(settings, source)
    broker = BrokerSettings(port=mosquitto.port, insecure_dev=True)
    async with make_client(broker, "nurse-desk") as viewer:
        await viewer.subscribe(Topics("test-kommune", "gw-test-1").events, qos=1)
        run = asyncio.create_task(gateway.run())
        try:
            async with asyncio.timeout(15):
                message: aiomqtt.Message
                async for message in viewer.messages:  # other events (storage, schedule) may come too
                    event = Event.model_validate_json(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
                    if event.kind == "glucose_out_of_range":
                        break
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    (stored,) = gateway.pipeline.history
    assert event.detail == {"reading": stored.id, "range": "above"}
    assert [str(a) for a in source.answers] == ["stored"]  # the meter may forget it: it is committed
