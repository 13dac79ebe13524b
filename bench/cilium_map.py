"""Benchmark (root): walk a 500,000-entry Cilium SNAT map, BPF_MAP_LOOKUP_BATCH against GET_NEXT_KEY + LOOKUP_ELEM.

Mounts a bpffs in a temporary directory, creates an LRU hash map with Cilium's layout (struct ipv4_ct_tuple ->
struct ipv4_nat_entry), fills it as Cilium's datapath does (an egress and a reverse entry per flow: 250,000
flows from 1,000 pods to 500 destination IPs x 4 ports), then, for each walk, runs a fresh process that reads the
whole map and decodes it (read_map + the flow keys + the per-egress-tuple counts: what one collection does), and
prints the median wall time of --runs walks, the process's peak RSS and its RSS before the walk.

    sudo .venv/bin/python -m bench.cilium_map [--flows 250000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from snat_exporter.collectors.conntrack.cilium import V4
from tests.collectors.conntrack.bpfmaps import TCP, SnatMap, bpffs
from tests.netns.lab import ROOT

WALK = r"""
import json, resource, sys, time
from snat_exporter.collectors.conntrack import cilium

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

path, batch, runs = sys.argv[1], sys.argv[2] == "batch", int(sys.argv[3])
before = rss_kb()
times = []
for _ in range(runs):
    t = time.perf_counter()
    counts = cilium.NatCounts()
    read = cilium.read_map(path, cilium.V4, counts, batch=batch)
    flows, tuples = counts.flows(), counts.tuples()
    times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "entries": read.entries, "batched": read.batched, "egress": counts.egress,
                  "flow_keys": len(flows), "tuples": len(tuples), "rss_before_kb": before,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def fill(m: SnatMap, flows: int) -> None:
    for i in range(flows):
        pod = f"10.244.{(i % 1000) // 250}.{i % 250 + 1}"
        dest = i % 2000  # 500 destination IPs x 4 ports
        m.flow(
            pod,
            1024 + i // 1000,  # unique (pod, source port) per flow
            f"20.50.{dest // 4 // 250}.{dest // 4 % 250 + 1}",
            443 + dest % 4,
            TCP,
            "10.224.0.4",
            32768 + i // 2000,  # unique NAT port per (destination, port): the reverse entries do not collide
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=250_000, help="flows; the map holds two entries per flow")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with bpffs() as root:
        m = SnatMap(root, V4, max_entries=max(2 * args.flows + 65536, 65536))
        t = time.perf_counter()
        fill(m, args.flows)
        print(f"filled {2 * args.flows} entries ({args.flows} flows) in {time.perf_counter() - t:.1f}s")
        results = {}
        for mode in ("batch", "per-key"):
            done = subprocess.run(
                [sys.executable, "-c", WALK, str(m.path), mode, str(args.runs)],
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=ROOT,
                check=True,
            )
            results[mode] = json.loads(done.stdout)
        m.close()
    for mode, r in results.items():
        assert r["entries"] == 2 * args.flows and r["egress"] == args.flows, r
        print(
            f"{mode:8s} walk+decode median {statistics.median(r['times']):.3f}s  runs "
            f"{[round(x, 3) for x in r['times']]}  peak RSS {r['maxrss_kb'] / 1024:.1f} MB "
            f"(before the walk {r['rss_before_kb'] / 1024:.1f} MB)  flow keys {r['flow_keys']}  tuples {r['tuples']}"
        )
    batch, each = (statistics.median(results[m]["times"]) for m in ("batch", "per-key"))
    print(f"ratio per-key / batch  {each / batch:.2f}")
    print(f"entries/s batch {2 * args.flows / batch:,.0f}  per-key {2 * args.flows / each:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
