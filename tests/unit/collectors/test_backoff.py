"""Backoff: capped, jittered, reset after a healthy period."""

from __future__ import annotations

from worker.collectors.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_doubles_up_to_the_cap_with_jitter() -> None:
    top = Backoff(1.0, 8.0, 60.0, rng=lambda: 1.0)
    assert [top.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    bottom = Backoff(1.0, 8.0, 60.0, rng=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_jitter_stays_within_half_and_full_cap() -> None:
    b = Backoff(0.5, 30.0, 60.0)
    for n in range(40):
        cap = min(30.0, 0.5 * 2**n)
        assert cap / 2 <= b.next_delay() <= cap


def test_resets_only_after_a_healthy_period() -> None:
    clock = Clock()
    b = Backoff(1.0, 100.0, 10.0, rng=lambda: 1.0, clock=clock)
    for _ in range(4):
        b.next_delay()
    b.observe_healthy()
    clock.t = 5.0  # healthy, but not long enough
    assert b.next_delay() == 16.0
    b.observe_healthy()
    clock.t = 20.0
    b.observe_healthy()  # still the same healthy period
    assert b.next_delay() == 1.0


def test_many_failures_never_overflow() -> None:
    b = Backoff(0.1, 5.0, 1.0, rng=lambda: 1.0)
    for _ in range(5000):
        assert b.next_delay() <= 5.0
