"""How a failed Azure query is reported: logged once per streak, and summed up when a whole cycle fails."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from dataclasses import dataclass

from snat_exporter.collectors.azure.planning import QueryKey
from snat_exporter.collectors.base import CollectError

log = logging.getLogger("snat_exporter.azure")

# Preferred reason when queries fail for different reasons: the one an operator must act on first.
_REASON_ORDER = ("auth", "permission_denied", "throttled", "http_5xx", "timeout", "unreachable", "malformed")


@dataclass(frozen=True)
class QueryFailure:
    reason: str
    message: str
    retry_after: float | None


Outcome = QueryFailure | None


class FailureLog:
    """Which queries are failing, and why: a resource failing every minute must not flood the log."""

    def __init__(self) -> None:
        self._failing: dict[QueryKey, str] = {}  # -> reason

    def failed(self, qkey: QueryKey, failure: QueryFailure) -> None:
        # Logged once per streak and reason.
        first = self._failing.get(qkey) != failure.reason
        self._failing[qkey] = failure.reason
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "Azure Monitor query failed; keeping the last good values",
            extra={
                "resource": qkey[0].uri,
                "metrics": qkey[1],
                "reason": failure.reason,
                "error": failure.message,
            },
        )

    def succeeded(self, qkey: QueryKey) -> None:
        if qkey in self._failing:
            log.info("query recovered", extra={"resource": qkey[0].name, "metrics": qkey[1]})
            del self._failing[qkey]


def cycle_error(failures: list[QueryFailure]) -> CollectError:
    """The error of a cycle whose every query failed: the most common reason (ties: the most actionable), and the
    longest Retry-After any answer asked for."""
    tally = Tally(f.reason for f in failures)
    top = max(tally.values())
    candidates = [r for r, n in tally.items() if n == top]
    reason = min(candidates, key=lambda r: _REASON_ORDER.index(r) if r in _REASON_ORDER else len(_REASON_ORDER))
    hints = [f.retry_after for f in failures if f.retry_after is not None]
    example = next(f.message for f in failures if f.reason == reason)
    return CollectError(
        reason,
        f"every Azure Monitor query failed ({len(failures)}), e.g. {example}",
        retry_after=max(hints) if hints else None,
    )
