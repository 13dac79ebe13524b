"""The collector interface: what a collector implements, what it receives, and how it reports a known failure.

A collector implements one coroutine, ``collect() -> Snapshot``; everything around it (schedule, deadline, error
capture, self-metrics, storing and rendering the snapshot) belongs to :mod:`snat_exporter.runner`. A collector
reaches the rest of the process only through its :class:`CollectorContext`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prometheus_client.registry import CollectorRegistry

from snat_exporter.identity import Identity
from snat_exporter.snapshot import Snapshot

Clock = Callable[[], float]


def _no_pause() -> None:
    pass


class CollectError(Exception):
    """A run failed for a known reason. ``reason`` is a short label value (bounded set), ``retry_after``
    a server-given hint in seconds."""

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class CollectorSection(Protocol):
    """What every collector's config section declares (the runner schedules by it)."""

    @property
    def enabled(self) -> bool: ...

    @property
    def interval(self) -> float:
        """Seconds between two runs."""

    @property
    def timeout(self) -> float:
        """Deadline of one run."""

    @property
    def max_age(self) -> float:
        """How long the last good data is served (marked stale) after failures."""


class Collector(Protocol):
    name: str

    async def start(self) -> None:
        """Long-lived set-up (clients, watches). Failures here are reported by the first collect()."""

    async def collect(self) -> Snapshot:
        """One run: read the source and return the whole new snapshot, or raise."""

    async def close(self) -> None:
        """Release clients, sockets and tasks; called once at shutdown."""


@runtime_checkable
class IdentitySource(Collector, Protocol):
    """A collector that is also the identity lookup of the others (its table row says ``provides_identity``)."""

    identity: Identity


@dataclass
class CollectorContext:
    """What a collector factory receives besides its config section: the live registry for its own self-metrics,
    the identity lookup, the clock (injected so tests can move time without sleeping), and the pause-for-scrapes
    hook.

    ``pause_for_scrapes`` is for work done on a thread (decoding, building a snapshot): called between two pieces
    of it (two resources, a few thousand series), it waits while /metrics is being served, so that scrapes are not
    slowed down by the collection sharing the interpreter (see :class:`snat_exporter.runner.ScrapesFirst`)."""

    registry: CollectorRegistry
    identity: Identity
    clock: Clock = time.time
    pause_for_scrapes: Callable[[], None] = _no_pause
