"""`device_source = "bluez"` on a machine without BlueZ: said once in one line, then retried quietly
with growing pauses (it was a full traceback every 5 s), while stored readings still go out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from gateway.ble import BleDeviceSource, connect_bluez
from gateway.service import Gateway
from gateway.settings import load_settings
from tests.support import config_for


async def test_no_bluez_is_said_once_and_retried_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # No system bus here, whatever the machine running the test has.
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-system-bus'}")
    settings = load_settings(config_for(tmp_path, 1))
    settings.web.port = 0  # any free port: the pages are not what this test is about, and 8080 may be taken
    attempts = 0

    async def counted_bluez(passkeys: dict[str, int | None]) -> object:
        nonlocal attempts
        attempts += 1
        return await connect_bluez(passkeys)

    source = BleDeviceSource(settings.devices, timezone=settings.gateway.timezone, platform=counted_bluez)
    gateway = Gateway(settings, source)
    gateway.source_restart_s = (0.05, 0.2)
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(gateway.run())
        await asyncio.sleep(1.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert attempts >= 4  # it keeps trying
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "gateway.uplink.connection" not in r.name]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert "BlueZ" in loud[0].getMessage() and loud[0].exc_info is None  # one line, no traceback
    assert "trying again" in loud[0].getMessage()
