"""Faults the simulator injects, each where the real service would produce it.

Front-door faults (latency, auth, throttling, HTTP status) decide the whole response before any data is read;
body faults (malformed JSON, wrong shape, connection reset) replace or cut the answer; data faults
(per-metric errorCode, empty timeseries, minutes without values, late revisions) change what is inside a 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

OPERATIONS = ("metrics", "batch", "arm")

FRONT_DOOR = ("latency", "auth", "status")
BODY = ("malformed", "wrong_shape", "reset")
DATA = ("metric_error", "empty_timeseries", "empty_minutes", "late_revisions")
KINDS = FRONT_DOOR + BODY + DATA


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

    kind: str
    operation: str | None = None
    resource: str | None = None
    metric: str | None = None
    times: int | None = None
    seconds: float = 1.0
    status: int = 500
    retry_after: float | None = None
    error_code: str = "InvalidSamplingType"
    message: str | None = None
    minutes: int | None = None
    fraction: float = 0.5
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


_FIELD_TYPES = {
    "kind": str,
    "operation": str,
    "resource": str,
    "metric": str,
    "times": int,
    "seconds": float,
    "status": int,
    "retry_after": float,
    "error_code": str,
    "message": str,
    "minutes": int,
    "fraction": float,
}


def fault_from_mapping(data: Any) -> Fault:
    """A Fault from a scenario's ``faults:`` entry; errors name the field (``ScenarioError``)."""
    from snat_exporter.simulator.scenario import ScenarioError

    if not isinstance(data, Mapping):
        raise ScenarioError("", f"expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(Fault)} - {"hits"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ScenarioError(str(key), "unknown key")
        if value is None:
            continue
        want = _FIELD_TYPES[key]
        ok = isinstance(value, want) and not isinstance(value, bool)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ScenarioError(str(key), f"expected {want.__name__}, got {value!r}")
        kwargs[key] = value
    if "kind" not in kwargs:
        raise ScenarioError("kind", "required")
    try:
        return Fault(**kwargs)
    except ValueError as err:
        path, _, message = str(err).partition(": ")
        raise ScenarioError(path, message) from None
