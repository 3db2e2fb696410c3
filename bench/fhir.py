"""The FHIR API under concurrent clients, against the raw SQL of the same search, in one run.

    .venv/bin/python bench/fhir.py [--readings 20000] [--patients 200] [--clients 20] [--seconds 10] [--db URL]

Fills a database (SQLite in a temporary folder unless --db names one) through the ingest worker's own
planning and commit, two tenants sharing pseudonyms; runs `dho-central fhir serve` (its local issuer's
real tokens); then C clients each search `patient=<random>&_count=50` (one page, the
Bundle with its total) as fast as they can for S seconds. The baseline: C threads running the same two
SQL statements (count, then the page) on the same database. Prints searches/s, p50/p99 latency, and
the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from central.fhir.issuer import LocalIssuer  # noqa: E402
from central.ingest.worker import Incoming, changes_and_acks  # noqa: E402
from central.store import Database, RegisteredGateway  # noqa: E402
from gateway.demo import free_port  # noqa: E402
from protocol import ReadingBatch, Topics, WireAssessment, WireDevice, WireQuantity, WireReading  # noqa: E402

KINDS = {"spo2": {"spo2": ("94", "%"), "pulse": ("72", "/min")}, "body_weight": {"weight": ("83.800", "kg")},
         "blood_pressure": {"systolic": ("128", "mm[Hg]"), "diastolic": ("82", "mm[Hg]"), "pulse": ("64", "/min")}}


def _reading(patient: str, kind: str, at: datetime) -> WireReading:
    return WireReading(
        id=uuid.uuid4(), patient=patient, type=kind,  # type: ignore[arg-type]
        components={k: WireQuantity(value=Decimal(v), unit=u) for k, (v, u) in KINDS[kind].items()},
        effective=at, time_source="device_synced", device_time=at.replace(tzinfo=None), clock_correction_s=0.0,
        device=WireDevice(id="F0:5E:1A:00:00:01", model="bench", serial=None, firmware="1", battery=80),
        assessment=WireAssessment(zone="green", rules=[], advice=[], profile="hf-standard", profile_version=1),
        received=at,
    )


def fill(database: Database, readings: int, patients: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_patient = max(1, readings // (2 * patients))
    for tenant in ("t1", "t2"):
        for p in range(patients):
            gateway = RegisteredGateway(f"gw-{tenant}-{p}", tenant, f"p-{p}")
            batch = [_reading(gateway.patient, list(KINDS)[i % 3], start + timedelta(hours=i))
                     for i in range(per_patient)]
            body = ReadingBatch(gateway=gateway.id, batch=uuid.uuid4(), sent=start, readings=batch).model_dump_json()
            message = Incoming(Topics(tenant, gateway.id).readings, body.encode(), 1, 1)
            changes, _ = changes_and_acks([message], {gateway.id: gateway}, now=datetime.now(UTC))
            database.commit(changes)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def api_clients(port: int, token: str, clients: int, seconds: float, patients: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def one(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            answer = await http.get("/fhir/Observation", params={"patient": f"p-{random.randrange(patients)}",
                                                                 "_count": "50"})
            answer.raise_for_status()
            latencies.append(time.monotonic() - began)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                                 limits=httpx.Limits(max_connections=clients), timeout=60) as http:
        await asyncio.gather(*(one(http) for _ in range(clients)))
    return latencies


def raw_sql(database: Database, clients: int, seconds: float, patients: int) -> list[float]:
    count = sa.text("SELECT count(*) FROM observations JOIN readings ON readings.id = observations.reading_id "
                    "WHERE observations.tenant = :t AND observations.patient = :p")
    page = sa.text("SELECT observations.id, observations.effective, observations.resource, readings.stored_at "
                   "FROM observations JOIN readings ON readings.id = observations.reading_id "
                   "WHERE observations.tenant = :t AND observations.patient = :p "
                   "ORDER BY observations.effective, observations.id LIMIT 51")
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def one() -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            params = {"t": "t1", "p": f"p-{random.randrange(patients)}"}
            with database.engine.connect() as conn:
                conn.execute(count, params).scalar_one()
                conn.execute(page, params).all()
            latencies.append(time.monotonic() - began)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=20000)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--db")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-fhir-")
    database = Database(args.db or str(Path(folder) / "central.sqlite3"), pool_size=args.clients)
    began = time.monotonic()
    fill(database, args.readings, args.patients)
    print(f"filled: {database.count('observations')} Observations in {time.monotonic() - began:.1f} s")
    # The server in its own process (`dho-central fhir serve`, the local issuer): the clients' Python does
    # not share its interpreter lock.
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    keys = Path(folder) / "keys"
    token = LocalIssuer(keys).issue(tenant="t1", audience=base)
    server = subprocess.Popen([sys.executable, "-m", "central.cli", "fhir", "serve", "--port", str(port), "--db",
                               database.url, "--key-dir", str(keys)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            httpx.get(f"{base}/metadata").raise_for_status()
            break
        except httpx.TransportError:
            time.sleep(0.1)
    api = asyncio.run(api_clients(port, token, args.clients, args.seconds, args.patients))
    raw = raw_sql(database, args.clients, args.seconds, args.patients)
    server.terminate()
    server.wait(timeout=30)
    api_rate, raw_rate = len(api) / args.seconds, len(raw) / args.seconds
    print(f"{'':28}{'searches/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'raw SQL (count + page)':28}{raw_rate:12.1f}{percentile(raw, 0.5):10.1f}{percentile(raw, 0.99):10.1f}")
    print(f"{'FHIR API, ' + str(args.clients) + ' clients':28}{api_rate:12.1f}{percentile(api, 0.5):10.1f}"
          f"{percentile(api, 0.99):10.1f}")
    print(f"ratio (API / raw SQL): {api_rate / raw_rate:.2f}; mean Bundle latency {statistics.mean(api) * 1000:.1f} ms")
    database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
