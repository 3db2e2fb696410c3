"""An idle gateway sleeps (issue 17.11): the pages' server and the MQTT client's keep-alive housekeeping
add no timer that fires several times a second. bench/memory.py measures the whole process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiomqtt
import httpx

from gateway.service import Gateway
from hardware_sims.home import SimulatedHome
from protocol import BrokerSettings, make_client
from tests.conftest import Mosquitto
from tests.test_web_http import settings


def _voluntary_switches() -> int:
    status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_ctxt_switches:"))


async def test_the_pages_server_does_not_wake_the_loop_while_idle_and_still_dates_its_answers(
        tmp_path: Path) -> None:
    gw = Gateway(settings(tmp_path), SimulatedHome())
    assert gw.web is not None
    task = asyncio.get_running_loop().create_task(gw.web.run())
    try:
        await gw.web.ready.wait()
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{gw.web.address}api/patient")
        assert answer.status_code == 200
        [date] = answer.headers.get_list("date")
        assert abs((parsedate_to_datetime(date) - datetime.now(UTC)).total_seconds()) < 5
        await asyncio.sleep(0.2)  # the connection's close handled
        before = _voluntary_switches()
        await asyncio.sleep(1.0)
        # uvicorn's own serve loop woke every 0.1 s: 10 switches here. Asleep, the loop's thread waits once.
        assert _voluntary_switches() - before <= 4
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        gw.outbox.close()
    assert task.done()


async def test_the_mqtt_keepalive_housekeeping_runs_every_quarter_keepalive_at_most_5_s(
        mosquitto: Mosquitto) -> None:
    assert "_misc_loop" in vars(aiomqtt.Client)  # what make_client's client replaces: still aiomqtt's name
    for keepalive, interval in ((60, 5.0), (8, 2.0)):
        broker = BrokerSettings(port=mosquitto.port, insecure_dev=True, keepalive_s=keepalive)
        async with make_client(broker, f"misc-{keepalive}") as client:
            assert client.misc_interval_s == interval  # type: ignore[attr-defined]
            task = client._misc_task
            assert task is not None and not task.done()
            assert task.get_coro().__qualname__ == "_Client._misc_loop"  # type: ignore[union-attr]
