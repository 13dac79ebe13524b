"""Process tuning: glibc's mmap threshold (large freed buffers go back to the kernel), the garbage collector, and
scrapes before background work."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from snat_exporter.runner import ScrapesFirst
from snat_exporter.tuning import ENV, fix_mmap_threshold

# Frees an 8 MB buffer (glibc then raises its dynamic threshold to 8 MB), then allocates 1 MB and says whether it
# landed on the heap (where it fragments and stays) or in its own mapping (returned to the kernel when freed).
PROBE = """
import ctypes, sys
from snat_exporter.tuning import fix_mmap_threshold
if sys.argv[1] == "fix":
    assert fix_mmap_threshold({}) == "set"
big = bytearray(8 << 20)
del big
probe = bytearray(1 << 20)
address = ctypes.addressof(ctypes.c_char.from_buffer(probe))
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        low, high = (int(x, 16) for x in line.split()[0].split("-"))
        if low <= address < high:
            print("heap")
            break
else:
    print("own mapping")
"""


def probe(mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_after_a_large_buffer_is_freed_the_next_ones_still_get_their_own_mapping() -> None:
    assert probe("leave") == "heap"  # glibc's default: what made the RSS grow cycle after cycle
    assert probe("fix") == "own mapping"


def test_a_threshold_set_in_the_environment_is_left_alone() -> None:
    assert fix_mmap_threshold({ENV: "65536"}) == "environment"


# Decodes "answers" (lists of small dicts, as json.loads makes them) while a long-lived structure exists, and
# counts the full collections that the short-lived objects triggered: each one walks every live object.
GC_PROBE = """
import gc, sys
from snat_exporter.tuning import tune_interpreter
kept = [{"series": [i]} for i in range(200_000)]  # the collector's caches, built during start-up and the first cycle
if sys.argv[1] == "tune":
    tune_interpreter()
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
for answer in range(40):  # each like a decoded Metrics answer: series with their dimensions and minutes
    series = [
        {"metadatavalues": [{"name": {"value": "backendipaddress"}, "value": str(i)}], "data": [{"total": 1.0}] * 10}
        for i in range(2_000)
    ]
    kept.append(len(series))
    del series
print(len(full))
"""


def full_collections(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", GC_PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_short_lived_answers_no_longer_trigger_full_collections() -> None:
    assert full_collections("default") > 0  # what stalled the event loop 30-65 ms at a time
    assert full_collections("tune") == 0


def test_background_work_waits_while_a_scrape_is_served() -> None:
    scrapes = ScrapesFirst(pause_limit=60.0)
    scrapes.begin()
    passed = threading.Event()

    def background() -> None:
        scrapes.checkpoint()
        passed.set()

    worker = threading.Thread(target=background)
    worker.start()
    assert not passed.wait(0.2)  # paused at its checkpoint
    scrapes.end()
    assert passed.wait(10)
    worker.join()


def test_every_scrape_of_a_burst_finds_the_background_paused() -> None:
    scrapes = ScrapesFirst(pause_limit=60.0)
    for _ in range(3):  # scrapes one after the other, each short
        scrapes.begin()
        passed = threading.Event()

        def background(done: threading.Event = passed) -> None:
            scrapes.checkpoint()
            done.set()

        worker = threading.Thread(target=background)
        worker.start()
        assert not passed.wait(0.1)
        scrapes.end()
        assert passed.wait(10)
        worker.join()


def test_back_to_back_scrapes_cannot_stall_background_work() -> None:
    scrapes = ScrapesFirst(pause_limit=0.05)
    scrapes.begin()  # and never ends
    started = time.monotonic()
    scrapes.checkpoint()
    assert 0.04 <= time.monotonic() - started < 5  # a bounded pause
    started = time.monotonic()
    for _ in range(1000):
        scrapes.checkpoint()
    assert time.monotonic() - started < 0.04  # then as long without one


def test_without_scrapes_a_checkpoint_costs_nothing() -> None:
    scrapes = ScrapesFirst(pause_limit=60.0)
    started = time.monotonic()
    for _ in range(10_000):
        scrapes.checkpoint()
    assert time.monotonic() - started < 1
