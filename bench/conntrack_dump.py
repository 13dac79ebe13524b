"""Benchmark (root): one full conntrack collection of 200,000 flows against ``conntrack -L > /dev/null``.

Builds the SNAT lab (tests/netns/lab.py), fills the node namespace with UDP flows (40 sockets x 100 destination
IPs x 50 ports, all SNATed, with the UDP timeout raised so they stay), then in the same run:
- ``conntrack -L > /dev/null`` in the node namespace, median wall time of --runs runs;
- the collector (dump + parse + aggregate + series, the real ``collect()``), median of --runs runs, in a
  process inside the node namespace, which then runs --cycles more collections and reports its max RSS and the
  RSS growth between cycle 1 and the last one.

    sudo .venv/bin/python -m bench.conntrack_dump [--flows-ips 100] [--runs 5] [--cycles 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from tests.netns.lab import PYTHON, ROOT, Lab

FILL = r"""
import socket, sys
nsock, nip, nport = map(int, sys.argv[1:4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(nsock)]
for i in range(nip):
    ip = f"198.51.100.{i + 1}"
    for p in range(nport):
        for s in socks:
            s.sendto(b"x", (ip, 10000 + p))
"""

COLLECT = r"""
import asyncio, json, resource, sys, time
from prometheus_client.registry import CollectorRegistry
from snat_exporter.collectors.base import CollectorContext
from snat_exporter.collectors.conntrack.collector import ConntrackCollector
from snat_exporter.config import load_config
from snat_exporter.identity import NoIdentity

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def main(runs, cycles):
    config = load_config(None, environ={}, overrides={"conntrack.enabled": "true", "conntrack.node_name": "bench"})
    c = ConntrackCollector(config.conntrack, CollectorContext(registry=CollectorRegistry(), identity=NoIdentity()))
    await c.start()
    times = []
    for _ in range(runs):
        t = time.perf_counter(); snap = await c.collect(); times.append(time.perf_counter() - t)
    first = rss_kb()
    for _ in range(cycles):
        snap = await c.collect()
    entries = [s.value for f in snap.families for s in f.samples if s.name == "snat_conntrack_entries"]
    print(json.dumps({"times": times, "rss_first_kb": first, "rss_last_kb": rss_kb(),
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "entries": entries[0]}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sockets", type=int, default=40)
    ap.add_argument("--ips", type=int, default=100)
    ap.add_argument("--ports", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=100)
    args = ap.parse_args()
    flows = args.sockets * args.ips * args.ports
    with Lab(udp_timeout=3600) as lab:
        t = time.perf_counter()
        lab.ns_exec(lab.pod, sys.executable, "-c", FILL, str(args.sockets), str(args.ips), str(args.ports))
        count = int(lab.ns_exec(lab.node, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"))
        print(f"filled {count} flows (asked {flows}) in {time.perf_counter() - t:.2f}s")
        baseline = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run(
                ["ip", "netns", "exec", lab.node, "conntrack", "-L"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            baseline.append(time.perf_counter() - t)
        done = subprocess.run(
            ["ip", "netns", "exec", lab.node, PYTHON, "-c", COLLECT, str(args.runs), str(args.cycles)],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=ROOT,
            check=True,
        )
        ours = json.loads(done.stdout)
    base, mine = statistics.median(baseline), statistics.median(ours["times"])
    print(f"conntrack -L > /dev/null     median {base:.3f}s  runs {[round(x, 3) for x in baseline]}")
    print(f"collector collect()          median {mine:.3f}s  runs {[round(x, 3) for x in ours['times']]}")
    print(f"ratio collector / conntrack  {mine / base:.2f}  (target <= 1.0)")
    print(f"entries seen by collector    {ours['entries']:.0f}")
    print(f"max RSS of collecting process {ours['maxrss_kb'] / 1024:.1f} MB  (target < 60 MB)")
    growth = (ours["rss_last_kb"] - ours["rss_first_kb"]) / 1024
    print(
        f"RSS after run {args.runs}: {ours['rss_first_kb'] / 1024:.1f} MB, after {args.cycles} more cycles: "
        f"{ours['rss_last_kb'] / 1024:.1f} MB, growth {growth:+.1f} MB  (target: no growth)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
