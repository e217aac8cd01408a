"""Capped, jittered exponential backoff that forgets after a healthy period."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """Delays for retry loops.

    The n-th consecutive failure waits between half and all of
    ``min(max_s, base_s * 2**(n-1))`` (equal jitter: never zero, never in
    lock-step with other streams). Once the caller has reported success
    continuously for ``healthy_after_s``, the next failure starts again from
    ``base_s``.
    """

    def __init__(
        self,
        base_s: float,
        max_s: float,
        healthy_after_s: float,
        *,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.healthy_after_s = healthy_after_s
        self._rng = rng
        self._clock = clock
        self.failures = 0
        self._healthy_since: float | None = None

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before retrying."""
        if self._healthy_since is not None:
            if self._clock() - self._healthy_since >= self.healthy_after_s:
                self.failures = 0
            self._healthy_since = None
        self.failures += 1
        cap = min(self.max_s, self.base_s * float(2 ** min(self.failures - 1, 62)))
        return cap / 2 + self._rng() * cap / 2

    def observe_healthy(self) -> None:
        """Record that the guarded operation works (starts the healthy clock)."""
        if self._healthy_since is None:
            self._healthy_since = self._clock()
