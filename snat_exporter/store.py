"""The latest data and health of each collector, written by the runner and read by /metrics without waiting.

Every collector has one writer (its task in :mod:`snat_exporter.runner`); the exposition and the landing page only
read. Both run on the one event loop, so a state's data is replaced in a single assignment and a reader always
sees a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass

from snat_exporter.render import Rendered
from snat_exporter.snapshot import Snapshot


@dataclass
class CollectorState:
    name: str
    interval: float
    max_age: float
    attempts: int = 0
    last_attempt_at: float | None = None
    last_duration: float | None = None
    last_ok: bool | None = None
    last_error: str | None = None  # "reason: message" of the last failure, for the landing page
    last_success_at: float | None = None
    consecutive_failures: int = 0
    # The last good data: its rendered exposition once rendered (the families are then let go: keeping both held
    # every series twice), or the snapshot itself if the runner could not render it. One of the two is set,
    # replaced in one step.
    snapshot: Snapshot | None = None
    rendered: Rendered | None = None


class Store:
    def __init__(self) -> None:
        self._states: dict[str, CollectorState] = {}

    def register(self, name: str, interval: float, max_age: float) -> CollectorState:
        state = CollectorState(name=name, interval=interval, max_age=max_age)
        self._states[name] = state
        return state

    def states(self) -> list[CollectorState]:
        return list(self._states.values())

    def get(self, name: str) -> CollectorState:
        return self._states[name]
