"""Helpers for tests that drive the `dho-gateway` command as a technician would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from gateway.readings import Pipeline, Reading

ROOT = Path(__file__).parent.parent


def cli(*args: str, timeout: float = 90, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.service.cli", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def config_for(data_dir: Path, port: int) -> Path:
    """The shipped example configuration, pointed at `data_dir` and a plain-TCP test broker."""
    text = (ROOT / "config" / "gateway.example.toml").read_text()
    text = text.replace('data_dir = "/var/lib/dho-gateway"', f'data_dir = "{data_dir}"')
    text = text.replace("insecure_dev = false", "insecure_dev = true").replace("port = 8883", f"port = {port}")
    text = text.replace('host = "mqtt.dho.example.no"', 'host = "127.0.0.1"')
    path = data_dir / "gateway.toml"
    path.write_text(text)
    return path


async def take(pipeline: Pipeline, address: str, characteristic: str, data: bytes) -> Reading | None:
    """Deliver one value as a device source does (`Pipeline.deliver`); the reading stored from it, if one
    was: None for a duplicate, a value held for the disk, another user's weighing, or no reading at all."""
    heard: list[Reading] = []
    stop = pipeline.readings.subscribe(lambda reading, _assessment: heard.append(reading))
    try:
        await pipeline.deliver(address, characteristic, data)
    finally:
        stop()
    return heard[-1] if heard else None
