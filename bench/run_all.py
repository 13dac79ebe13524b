"""`make bench`: every benchmark in sequence (one at a time: they share this machine's cores).

python -m bench.run_all [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time

# Each runs in its own process, so one's memory and threads do not colour the next one's figures.
BENCHMARKS = (
    "bench.azure_collection",
    "bench.scrape_latency",
    "bench.kube_cache",
    "bench.conntrack_dump",
    "bench.cilium_map",
)
TAKES_QUICK = {"bench.azure_collection", "bench.scrape_latency"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    args = parser.parse_args(argv)
    failed = 0
    for name in BENCHMARKS:
        if importlib.util.find_spec(name) is None:
            print(f"\n### {name}: not present, skipped")
            continue
        command = [sys.executable, "-m", name] + (["--quick"] if args.quick and name in TAKES_QUICK else [])
        print(f"\n### {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.run(command, check=False).returncode
        print(f"### {name}: exit {code}, {time.monotonic() - started:.0f} s", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
