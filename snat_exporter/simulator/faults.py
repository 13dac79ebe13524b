"""Faults the simulator injects, each where the real service would produce it.

Front-door faults (latency, auth, throttling, HTTP status) decide the whole response before any data is read;
body faults (malformed JSON, wrong shape, connection reset) replace or cut the answer; data faults
(per-metric errorCode, empty timeseries, minutes without values, late revisions) change what is inside a 200.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Any

from snat_exporter.settings import setting

OPERATIONS = ("metrics", "batch", "arm")

FRONT_DOOR = ("latency", "auth", "status")
BODY = ("malformed", "wrong_shape", "reset")
DATA = ("metric_error", "empty_timeseries", "empty_minutes", "late_revisions")
KINDS = FRONT_DOOR + BODY + DATA


def _typed(kind: type) -> Callable[[Any], Any]:
    """A scenario's value of exactly ``kind`` (an int is a float too; a bool is neither)."""

    def parse(value: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"expected {kind.__name__}, got {value!r}")
        return value

    return parse


@dataclass
class Fault:
    """One fault. It hits requests matching ``operation`` / ``resource`` (a resource name, case-insensitive) /
    ``metric`` (one of the requested metric names); ``times`` is how many requests it hits (None = all).

    kind-specific fields:
      latency: ``seconds`` before anything is answered.
      status: ``status`` (429, 500, 503, 529, ...) with the Azure error body; ``retry_after`` seconds adds a
        Retry-After header (429 without it is what some throttling paths send).
      metric_error: ``error_code`` / ``message`` on the matching metrics inside an HTTP 200, timeseries [].
      empty_minutes: the ``minutes`` newest minutes that would have a value have none (None: every minute).
      late_revisions: Total metrics of the ``minutes`` minutes after the lag show ``fraction`` of their value.
    """

    kind: str = setting(MISSING, "One of KINDS.", parse=_typed(str))
    operation: str | None = setting(None, "One of OPERATIONS; default: every operation.", parse=_typed(str))
    resource: str | None = setting(None, "A resource name, case-insensitive.", parse=_typed(str))
    metric: str | None = setting(None, "One of the requested metric names.", parse=_typed(str))
    times: int | None = setting(None, "Requests it hits; default: all.", parse=_typed(int))
    seconds: float = setting(1.0, "latency: the wait.", parse=_typed(float))
    status: int = setting(500, "status: the HTTP status.", parse=_typed(int))
    retry_after: float | None = setting(None, "status: a Retry-After header, in seconds.", parse=_typed(float))
    error_code: str = setting("InvalidSamplingType", "metric_error: the errorCode.", parse=_typed(str))
    message: str | None = setting(None, "metric_error: the errorMessage.", parse=_typed(str))
    minutes: int | None = setting(None, "empty_minutes, late_revisions: how many minutes.", parse=_typed(int))
    fraction: float = setting(0.5, "late_revisions: the share first published.", parse=_typed(float))
    hits: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.operation is not None and self.operation not in OPERATIONS:
            raise ValueError(f"operation: expected one of {', '.join(OPERATIONS)}, got {self.operation!r}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times: must be at least 1 (or null for always), got {self.times}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"status: expected an HTTP error status 400-599, got {self.status}")
        if self.seconds < 0:
            raise ValueError(f"seconds: must not be negative, got {self.seconds}")
        if self.minutes is not None and self.minutes < 0:
            raise ValueError(f"minutes: must not be negative, got {self.minutes}")
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction: must be between 0 and 1, got {self.fraction}")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, operation: str, resources: tuple[str, ...], metrics: tuple[str, ...]) -> bool:
        if self.exhausted:
            return False
        if self.operation is not None and self.operation != operation:
            return False
        if self.resource is not None and self.resource.lower() not in (r.lower() for r in resources):
            return False
        return self.metric is None or self.metric.lower() in (m.lower() for m in metrics)

    def applies_to(self, resource: str, metric: str | None = None) -> bool:
        """For data faults: does this (already matched) fault change ``metric`` of ``resource``?"""
        if self.resource is not None and self.resource.lower() != resource.lower():
            return False
        return self.metric is None or metric is None or self.metric.lower() == metric.lower()
