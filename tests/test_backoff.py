"""The one backoff of the sync layer: doubling, capped, jittered, and reset after a success."""

from __future__ import annotations

import pytest

from protocol import Backoff, backoff_delay


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
    with pytest.raises(ValueError):
        Backoff(5.0, 1.0)


def test_the_pause_after_n_failures_is_the_same_rule() -> None:
    for failures, step in [(1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (10_000, 600.0)]:
        assert step / 2 <= backoff_delay(failures, 5.0, 600.0) <= step
