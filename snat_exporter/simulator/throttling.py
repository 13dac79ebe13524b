"""ARM's read throttling as the simulator applies it: a token bucket per subscription (the principal's), and one
GLOBAL_BUCKET_FACTOR times larger (the subscription's global limit); an empty bucket answers 429 with a
Retry-After of the seconds until a token is back, and every answer reports the tokens left."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from snat_exporter.simulator.errors import ApiError
from snat_exporter.simulator.scenario import Scenario

GLOBAL_BUCKET_FACTOR = 15  # ARM's global subscription limits are 15x the per-principal ones


@dataclass
class _Bucket:
    capacity: float
    refill: float
    tokens: float
    last: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.refill)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def retry_after(self) -> int:
        if self.refill <= 0:
            return 60
        return max(1, math.ceil((1 - self.tokens) / self.refill))


class ArmThrottle:
    def __init__(self, scenario: Scenario, clock: Callable[[], float]):
        self.scenario = scenario
        self.clock = clock
        self._buckets: dict[str, tuple[_Bucket, _Bucket]] = {}

    def check(self, path: str, headers: dict[str, str]) -> None:
        """Takes a read token of the request's subscription, or raises the 429 ARM answers with."""
        s = self.scenario
        if s.ratelimit_reads <= 0:
            return
        m = re.match(r"^/subscriptions/([^/]+)", path, re.IGNORECASE)
        sub = (m.group(1) if m else "-").lower()
        now = self.clock()
        if sub not in self._buckets:
            reads, refill = float(s.ratelimit_reads), s.ratelimit_refill_per_second
            self._buckets[sub] = (
                _Bucket(reads, refill, reads, now),
                _Bucket(reads * GLOBAL_BUCKET_FACTOR, refill * GLOBAL_BUCKET_FACTOR, reads * GLOBAL_BUCKET_FACTOR, now),
            )
        bucket, global_bucket = self._buckets[sub]
        ok = bucket.take(now) and global_bucket.take(now)
        headers["x-ms-ratelimit-remaining-subscription-reads"] = str(int(bucket.tokens))
        headers["x-ms-ratelimit-remaining-subscription-global-reads"] = str(int(global_bucket.tokens))
        if not ok:
            wait = max(
                bucket.retry_after() if bucket.tokens < 1 else 1,
                global_bucket.retry_after() if global_bucket.tokens < 1 else 1,
            )
            raise ApiError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of 'read' requests for subscription '{sub}' actor 'simulated' exceeded. Please try again "
                f"after '{wait}' seconds after additional tokens are available. "
                "Refer to https://aka.ms/arm-throttling for additional information.",
                {"Retry-After": str(wait)},
            )
