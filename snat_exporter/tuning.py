"""Process tuning, in one place: the interpreter and the C library, set up for a long-running process whose cycles
allocate a lot at once. :func:`snat_exporter.server.serve` calls :func:`before_start` and :func:`after_start`, and
nothing else in the package touches these knobs; each one is here with the measurement that justifies it.
(Scrapes-before-background-work, the other performance trick of the process, is a scheduling policy of
:mod:`snat_exporter.runner`.)

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


def before_start() -> str:
    """Before the exporter allocates anything large: the malloc threshold (returns what :func:`fix_mmap_threshold`
    did, for the log)."""
    return fix_mmap_threshold()


def after_start() -> None:
    """Once start-up is done: the garbage collector and the GIL switch interval."""
    tune_interpreter()
