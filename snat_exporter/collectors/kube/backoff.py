"""The wait between retries of a failed list or watch."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Exponential back-off with jitter: each delay is drawn from [d/2, d], d doubling up to ``maximum``."""

    def __init__(
        self,
        initial: float = 0.8,
        maximum: float = 30.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._rand = rand
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay * (0.5 + self._rand() / 2)

    def reset(self) -> None:
        self._next = self.initial
