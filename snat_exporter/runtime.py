"""The interpreter and the C library, set up for a long-running process whose cycles allocate a lot at once.

Memory: glibc's malloc.

Each Azure cycle decodes answers of several MB and renders the exposition; glibc's dynamic mmap threshold rises to
the largest buffer freed (up to 32 MB), so from the second cycle on those buffers come from the heap, fragment it,
and are never returned: 284 MB instead of 172 MB at 1,200 resources (docs/performance.md). A fixed threshold keeps
large buffers in their own mappings, given back to the kernel when freed. The image also sets the variable, which
glibc reads before Python starts; this covers every other way of running the exporter.

Pauses: Python's cyclic garbage collector. Decoding an Azure answer makes tens of thousands of short-lived dicts;
with the default thresholds (700, 10, 10) enough of them are caught alive to trigger full collections mid-cycle,
each of which walks every live object holding the GIL: 30-65 ms stalls of the event loop, and of every /metrics
scrape waiting on it, at 20,000 series (docs/performance.md). A larger first threshold lets those objects die by
reference counting before a collection sees them, and what start-up created (modules, classes, functions: about
55,000 objects that live as long as the process) is moved out of the collector's sight.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
import time
from collections.abc import Mapping

ENV = "MALLOC_MMAP_THRESHOLD_"
THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


def fix_mmap_threshold(environ: Mapping[str, str] = os.environ) -> str:
    """Fixes the threshold unless the environment already did: returns ``environment``, ``set`` or
    ``unavailable`` (not glibc)."""
    if ENV in environ:
        return "environment"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "unavailable"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return "set" if mallopt(_M_MMAP_THRESHOLD, THRESHOLD) == 1 else "unavailable"


GC_THRESHOLDS = (10_000, 10, 10)
# How long a thread may hold the GIL while another waits for it (Python's default is 5 ms). The event loop gives the
# GIL up at every socket call of a scrape and waits up to this long to get it back while a collector thread decodes:
# with 4 concurrent scrapes during a 20,000-series cycle, 1 ms took the slowest from about 65 ms to about 30 ms.
SWITCH_INTERVAL = 0.001


def tune_interpreter() -> None:
    """Call once start-up is done. The garbage collector: everything alive then is frozen (never scanned again),
    and the thresholds are raised; reference counting still frees every object, only reference cycles wait for a
    collection. And the GIL switch interval, shortened for the event loop's sake."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)


class ScrapesFirst:
    """Scrapes before background work.

    Decoding Azure answers and building and rendering snapshots run on threads, but the interpreter runs one thread
    at a time: a scrape sharing it with a busy thread waits up to a switch interval (5 ms) each time it gives the
    GIL up (every socket call), and four concurrent scrapes took 80 ms instead of 10 while a 20,000-series cycle was
    processed. So while a scrape is served, background threads pause at their next :meth:`checkpoint` (between two
    resources, two families, a few thousand lines). A pause lasts at most ``pause_limit``; one that lasted that long is
    followed by as long without one, so that back-to-back scrapes cannot starve the collection of more than half its
    time."""

    def __init__(self, pause_limit: float = 0.05) -> None:
        self.pause_limit = pause_limit
        self._idle = threading.Event()
        self._idle.set()
        self._serving = 0  # changed on the event loop only
        self._free_until = 0.0

    def begin(self) -> None:
        self._serving += 1
        self._idle.clear()

    def end(self) -> None:
        self._serving -= 1
        if self._serving <= 0:
            self._serving = 0
            self._idle.set()

    def checkpoint(self) -> None:
        """Called by background threads at points where pausing holds nothing a scrape needs."""
        if self._idle.is_set() or time.monotonic() < self._free_until:
            return
        if not self._idle.wait(self.pause_limit):
            # Scrapes kept coming for a whole pause: the next stretch runs without one. Only then: scrapes arrive
            # in bursts (several Prometheus servers, all fired at once), and the whole burst should find the
            # background paused, not just its first scrape.
            self._free_until = time.monotonic() + self.pause_limit


SCRAPES = ScrapesFirst()
