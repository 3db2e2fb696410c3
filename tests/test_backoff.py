"""The one backoff of both deployables (protocol.Backoff): doubling, capped, jittered into the upper half
of each step, reset after a success; the same rule for a caller that counts failures itself."""

from __future__ import annotations

import pytest

from protocol import Backoff


def test_steps_double_up_to_the_ceiling_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(0.5, 4.0)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, step in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert step / 2 <= delay <= step


def test_jitter_spreads_many_gateways_apart() -> None:
    firsts = {round(Backoff(10.0, 60.0).next_delay(), 3) for _ in range(50)}
    assert len(firsts) > 25  # not 5,000 gateways reconnecting in the same millisecond


def test_reset_starts_again_from_the_first_step() -> None:
    backoff = Backoff(1.0, 60.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_nonsense_bounds_are_refused() -> None:
    for first, ceiling in [(5.0, 1.0), (0.0, 1.0), (-1.0, 1.0)]:
        with pytest.raises(ValueError):
            Backoff(first, ceiling)


def test_the_pause_after_n_failures_is_the_same_rule() -> None:
    """`delay(failures)`: for a caller that counts failures itself (the BLE source, one count per device)."""
    backoff = Backoff(5.0, 600.0)
    assert [backoff.step(n) for n in (0, 1, 2, 3, 8, 100, 10_000)] == [0.0, 5.0, 10.0, 20.0, 600.0, 600.0, 600.0]
    assert backoff.delay(0) == 0.0  # no failure, no pause
    for failures, step in [(1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (10_000, 600.0)]:
        assert all(step / 2 <= backoff.delay(failures) <= step for _ in range(200))


def test_delay_leaves_the_count_of_next_delay_alone() -> None:
    backoff = Backoff(1.0, 60.0, jitter=False)
    backoff.delay(7)
    assert backoff.next_delay() == 1.0


def test_without_jitter_the_pause_is_the_step_itself() -> None:
    """For callers that have always waited exactly (the central's database retries, its process restarts)."""
    backoff = Backoff(0.2, 5.0, jitter=False)
    assert [backoff.next_delay() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert Backoff(1.0, 30.0, jitter=False).delay(3) == 4.0


async def test_wait_sleeps_the_delay_it_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("protocol.backoff.asyncio.sleep", sleep)
    backoff = Backoff(0.5, 4.0)
    waited = [await backoff.wait() for _ in range(3)]
    assert waited == slept and all(step / 2 <= w <= step for w, step in zip(waited, [0.5, 1.0, 2.0], strict=True))
