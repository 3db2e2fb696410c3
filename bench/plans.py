"""Signed plan benchmark: what checking a down/config message costs, and how big a signed plan is.

    .venv/bin/python bench/plans.py [--runs 300]

Times, on this machine, the full check the gateway runs on a typical plan message (size and JSON
bounds, RFC 8785 canonical form, two Ed25519 signatures against the trust store, the plan document,
the plan built on its pinned profile), and the same with a trust store travelling along (one more
signature). Baselines measured in the same run: one sealed outbox insert (AES-GCM + SQLite commit
with synchronous=FULL, what every reading costs) and one assessment. The gateway runs the check in a
thread either way, so readings are not delayed by it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.measurement import Measurement, MeasurementKind, Quantity
from gateway.plans import Binding, InForce, load_advice, load_profile, verify_config
from gateway.storage import SealedOutbox
from protocol import ConfigMessage, Envelope, TrustedKey, TrustStore, encode_key, open_trust_store
from zoning import Override, PlanDocument, PlanSchedule, assess_reading, standard_plan

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime.now(UTC)
BINDING = Binding("demo-kommune", "gw-0001", "p-7f3a9c")


def _median_s(fn: Callable[[], object], runs: int) -> float:
    return _times(fn, runs)[0]


def _times(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, fastest): on a shared machine the fastest run is the cost without interference."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


async def _loop_lag_s(work: Callable[[], object] | None, rounds: int) -> float:
    """The longest a 1 ms ticker on the event loop was late while `work` ran `rounds` times in a thread."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - start - 0.001)

    task = asyncio.create_task(ticker())
    for _ in range(rounds):
        if work is None:
            await asyncio.sleep(0.01)
        else:
            await asyncio.to_thread(work)
    done.set()
    await task
    return worst


def typical_messages() -> tuple[bytes, bytes, Ed25519PrivateKey, TrustStore]:
    """A COPD plan with five overrides (the size of a real order), signed by a GP and a nurse."""
    root, gp, nurse = (Ed25519PrivateKey.generate() for _ in range(3))
    keys = [TrustedKey(id=f"key-{i}", role="prescriber" if i % 2 else "verifier", holder=f"Person {i}",
                       public_key=encode_key((gp if i == 1 else nurse if i == 2 else Ed25519PrivateKey.generate())
                                             .public_key()),
                       not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=700)) for i in range(1, 21)]
    store = Envelope(payload=TrustStore(tenant="demo-kommune", version=2, issued=NOW, keys=tuple(keys))
                     .model_dump(mode="json")).signed_by(root, "root-2026", "root")
    base = load_profile("standard-copd")
    orders = [("spo2.red", "88"), ("spo2.yellow", "92"), ("spo2.pulse.red.high", "125"),
              ("spo2.pulse.yellow.high", "105"), ("temp.red.high", "39.5")]
    known = {r.id for r in (*base.rules, *base.trends, *base.consecutive)}
    overrides = tuple(Override(rule=rule, limit=Decimal(limit), reason="GP order 2026-11-02 (Dr. Hansen)")
                      for rule, limit in orders if rule in known)
    document = PlanDocument(tenant="demo-kommune", gateway="gw-0001", patient="p-7f3a9c", version=2, issued=NOW,
                            expires=NOW + timedelta(days=365), profile=base.id, profile_version=base.version,
                            profile_hash=base.content_hash(), overrides=overrides,
                            schedule=PlanSchedule(enrolled=date(2026, 11, 1)), language="nb")
    plan = (Envelope(payload=document.model_dump(mode="json")).signed_by(gp, "key-1", "prescriber")
            .signed_by(nurse, "key-2", "verifier"))
    plain = ConfigMessage(plan=plan).model_dump_json(exclude_none=True).encode()
    with_store = ConfigMessage(plan=plan, trust_store=store).model_dump_json(exclude_none=True).encode()
    return plain, with_store, root, open_trust_store(store, root.public_key())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()

    plain, with_store, root, store = typical_messages()
    advice = load_advice()
    in_force = InForce(store, 1, "sha256:" + "0" * 64)
    older = InForce(TrustStore(tenant=store.tenant, version=1, issued=store.issued, keys=store.keys), 1, None)

    def check(raw: bytes, state: InForce) -> object:
        return verify_config(raw, binding=BINDING, root=root.public_key(), in_force=state, now=NOW,
                             templates=advice, profiles=load_profile)

    check(plain, in_force)
    check(with_store, older)
    verify_s, verify_best_s = _times(lambda: check(plain, in_force), args.runs)
    verify_store_s = _median_s(lambda: check(with_store, older), args.runs)

    plan = standard_plan(load_profile("standard-copd"), advice, date(2026, 11, 1))
    m = Measurement(kind=MeasurementKind.SPO2, components={"spo2": Quantity(value=Decimal(93), unit="%"),
                                                           "pulse": Quantity(value=Decimal(80), unit="/min")})
    assess_s = _median_s(lambda: assess_reading(m, reading_id="r", effective=NOW, history=[], plan=plan, tz=OSLO),
                         args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-plans-") as tmp:
        outbox = SealedOutbox(Path(tmp) / "outbox.sqlite3", os.urandom(32))
        payload = b'{"reading": "' + b"x" * 900 + b'"}'  # a wire reading is about 1 KB
        counter = iter(range(10**9))
        insert_s, insert_best_s = _times(lambda: outbox.put(f"r-{next(counter)}", payload), min(args.runs, 200))
        outbox.close()

    idle_lag = asyncio.run(_loop_lag_s(None, 30))
    busy_lag = asyncio.run(_loop_lag_s(lambda: check(plain, in_force), 30))

    print(f"typical signed plan message: {len(plain):,} bytes; with a 20-key trust store along: "
          f"{len(with_store):,} bytes")
    print(f"verify a plan message (median of {args.runs}): {verify_s * 1000:.2f} ms; "
          f"with a trust store along: {verify_store_s * 1000:.2f} ms")
    print(f"baseline, same run: one sealed outbox insert {insert_s * 1000:.2f} ms; one assessment "
          f"{assess_s * 1000:.3f} ms")
    print(f"ratio verify / sealed insert: {verify_s / insert_s:.2f}; verify / assessment: {verify_s / assess_s:.1f}; "
          f"with trust store / sealed insert: {verify_store_s / insert_s:.2f}")
    print(f"fastest runs: verify {verify_best_s * 1000:.2f} ms, sealed insert {insert_best_s * 1000:.2f} ms "
          f"(ratio {verify_best_s / insert_best_s:.2f})")
    print(f"event loop while plans are checked in a thread: worst lag {busy_lag * 1000:.1f} ms against "
          f"{idle_lag * 1000:.1f} ms idle (ratio {busy_lag / max(idle_lag, 1e-6):.1f})")


if __name__ == "__main__":
    main()
