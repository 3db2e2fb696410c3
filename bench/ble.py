"""BLE benchmark: decodes per second, and indication -> Measurement latency through the simulated link.

    .venv/bin/python bench/ble.py [--decodes 20000] [--indications 500]

Decodes/s for each health measurement, against the baseline of reading the same bytes' fields with
int.from_bytes (what parsing costs beyond touching the bytes). Latency p50/p99 from the simulated
cuff's indicate call to the decoded Measurement in the gateway's callback, through bleak's
BleakClient on the bumble backend, against the same indications received with bumble alone (the
ratio is what bleak and our backend add). The in-process link has no radio timing: these are software
costs, not air time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from bleak import BleakClient
from bumble.core import UUID
from bumble.device import Peer

from drivers import uuids
from drivers.decoders import decode
from hardware_sims.bleak_backend import BumbleClient
from hardware_sims.blood_pressure import CuffResult
from hardware_sims.gatt_devices import BloodPressureCuff
from hardware_sims.radio import VirtualRadio, random_static

SAMPLES = {
    "blood pressure 0x2A35": (uuids.BLOOD_PRESSURE_MEASUREMENT, bytes.fromhex("0E8C005A006A00DD07081A090A14480002")),
    "PLX spot-check 0x2A5E": (uuids.PLX_SPOT_CHECK, bytes.fromhex("0F61004800EA070B18081E050002200000 19F0")),
    "weight 0x2A9D": (uuids.WEIGHT_MEASUREMENT, bytes.fromhex("0E993EEA070B18081E0502F7000807")),
    "temperature 0x2A1C": (uuids.TEMPERATURE_MEASUREMENT, bytes.fromhex("02710100FFEA070B18081E05")),
    "glucose 0x2A18": (uuids.GLUCOSE_MEASUREMENT, bytes.fromhex("030700EA070B18081E050F006CB011")),
}


def decode_rates(n: int) -> None:
    print(f"{'characteristic':<24}{'decodes/s':>12}{'baseline/s':>13}{'ratio':>8}")
    for name, (characteristic, data) in SAMPLES.items():
        start = time.perf_counter()
        for _ in range(n):
            decode(characteristic, data)
        rate = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(n):
            [int.from_bytes(data[i:i + 2], "little") for i in range(0, len(data) - 1, 2)]
        base = n / (time.perf_counter() - start)
        print(f"{name:<24}{rate:12.0f}{base:13.0f}{rate / base:8.3f}")


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1e3, cuts[98] * 1e3


async def latency(n: int) -> None:
    radio = VirtualRadio()
    cuff = BloodPressureCuff(radio, disconnects_when_done=False)
    await cuff.power_on()
    await cuff.advertise()
    values = [cuff.encoder.measurement(CuffResult(120 + i % 40, 80, 70), cuff.clock()) for i in range(n)]

    async def run(subscribe: object) -> list[float]:
        done: asyncio.Queue[float] = asyncio.Queue()
        lat: list[float] = []

        def on_value(data: bytes) -> None:
            decode(uuids.BLOOD_PRESSURE_MEASUREMENT, bytes(data))
            done.put_nowait(time.perf_counter())

        await subscribe(on_value)  # type: ignore[operator]
        for value in values:
            sent = time.perf_counter()
            await cuff.device.indicate_subscribers(cuff.measurement_char, value)
            lat.append(await done.get() - sent)
        return lat

    client = BleakClient(cuff.address, backend=BumbleClient, radio=radio, timeout=10)
    await client.connect()

    async def via_bleak(callback: object) -> None:
        await client.start_notify(uuids.BLOOD_PRESSURE_MEASUREMENT, lambda _c, d: callback(d))  # type: ignore[operator]

    with_bleak = await run(via_bleak)
    await client.disconnect()
    await asyncio.sleep(0.1)

    await cuff.advertise()
    adapter = await radio.adapter()
    connection = await adapter.connect(random_static(cuff.address))
    peer = Peer(connection)
    await peer.discover_services()

    async def via_bumble(callback: object) -> None:
        characteristic = (await peer.discover_characteristics(uuids=[UUID("2A35")]))[0]
        await peer.subscribe(characteristic, callback, prefer_notify=False)  # type: ignore[arg-type]

    bare = await run(via_bumble)
    await connection.disconnect()
    b50, b99 = percentiles(with_bleak)
    r50, r99 = percentiles(bare)
    print(f"\nindication -> Measurement, {n} indications through the simulated link:")
    print(f"  bleak on the bumble backend: p50 {b50:.3f} ms, p99 {b99:.3f} ms")
    print(f"  bumble alone (baseline):     p50 {r50:.3f} ms, p99 {r99:.3f} ms; ratio p50 {b50 / r50:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decodes", type=int, default=20_000)
    parser.add_argument("--indications", type=int, default=500)
    args = parser.parse_args()
    decode_rates(args.decodes)
    asyncio.run(latency(args.indications))


if __name__ == "__main__":
    main()
