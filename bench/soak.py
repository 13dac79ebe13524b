"""Soak: the exporter for N minutes at 1,000 Azure resources, with faults injected at random and (as root)
conntrack churn in a lab network namespace, sampling its RSS, open file descriptors, threads and asyncio tasks.

    .venv/bin/python -m bench.soak [--minutes 30] [--sample 5] [--fault-every 45]

The exporter runs in this process (so its asyncio tasks can be counted) with the Azure and, as root, the conntrack
collector on their normal background loops, scraped every 15 s like Prometheus would. The simulator runs in a
child process and takes fault commands on stdin. As root, the whole run happens inside the node namespace of a
tests/netns/lab.py lab (loopback there; nothing leaves the machine) while client processes in the pod namespace
open and close flows.

Prints a sample line per minute and, at the end, RSS growth after warm-up (target < 5%), file descriptors (peak)
and asyncio tasks (floor, between cycles) at the end of warm-up vs the end (target: flat), faults injected and
errors counted; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.common import SUB, estate, explicit_ids, free_port

RSS_GROWTH_TARGET = 0.05
SCRAPE_EVERY = 15.0
FD_NOISE = 5
CLONE_NEWNET = 0x40000000

# What the random fault injector picks from: every kind the simulator has, each for a random stretch.
FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 429, "retry_after": 20},
    {"kind": "status", "status": 429},
    {"kind": "status", "status": 529},
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "latency", "seconds": 30},
    {"kind": "reset"},
    {"kind": "malformed"},
    {"kind": "wrong_shape"},
    {"kind": "metric_error", "metric": "UsedSnatPorts"},
    {"kind": "empty_timeseries", "metric": "SnatConnectionCount"},
    {"kind": "empty_minutes", "minutes": None},
    {"kind": "auth"},
]


# ------------------------------------------------------------------------------------ simulator child process

SIMULATOR_CHILD = r"""
import asyncio, json, sys, threading
from snat_exporter.simulator import Fault, Simulator, load_scenario

async def main(path, port):
    sim = Simulator(load_scenario(path))
    await sim.start("127.0.0.1", int(port))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def apply(command):
        sim.requests.clear()  # the record is for tests; a soak must not let it grow
        if command.get("clear"):
            sim.clear_faults()
        if command.get("add"):
            sim.add_fault(Fault(**command["add"]))

    def reader():
        for line in sys.stdin:
            loop.call_soon_threadsafe(apply, json.loads(line))
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=reader, daemon=True).start()
    await done.wait()
    await sim.stop()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@contextmanager
def simulator(data: dict[str, Any]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estate.yaml"
        path.write_text(yaml.safe_dump(data))
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", SIMULATOR_CHILD, str(path), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the child is up (or dies: then "" and we fail)
            if line.strip() != "ready":
                raise RuntimeError(f"the simulator did not start (exit {proc.poll()})")
            yield f"http://127.0.0.1:{port}", proc
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def command(proc: subprocess.Popen[str], **cmd: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cmd) + "\n")
    proc.stdin.flush()


# ---------------------------------------------------------------------------------------------- sampling


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Sample:
    t: float
    rss: float
    fds: int
    tasks: int
    threads: int
    scrape_seconds: float
    series: int


def enter_netns(name: str) -> None:
    """Move this (still single-threaded) process into a named network namespace: threads and children created
    later inherit it. Python 3.11 has no os.setns, hence libc."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name}) failed")
    finally:
        os.close(fd)


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[float, dict[tuple[str, str], float], int]:
    """(seconds, the collector error counters, number of series). Only the few lines needed are parsed: parsing
    tens of thousands of series here would stall the exporter, which shares this event loop."""
    t0 = time.monotonic()
    async with session.get(url + "/metrics") as resp:
        text = await resp.text()
    seconds = time.monotonic() - t0
    wanted = "\n".join(line for line in text.splitlines() if line.startswith("snat_exporter_collector_errors_total"))
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(wanted + "\n"):
        for s in family.samples:
            key = (s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())))
            out[key] = float(s.value)
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return seconds, out, series


async def soak(args: argparse.Namespace, lab: Any) -> int:
    from snat_exporter.config import load_config
    from snat_exporter.logs import setup_logging
    from snat_exporter.server import Exporter

    setup_logging("error")  # faults are logged once per streak; a soak log would only be noise here
    data = estate(args.load_balancers, args.nat_gateways, backends=args.backends)
    resources = 1 + len(explicit_ids(data))
    rng = random.Random(args.seed)
    with simulator(data) as (sim_url, sim):
        overrides = {
            "azure.enabled": "true",
            "azure.arm_endpoint": sim_url,
            "azure.credential": "none",
            "azure.subscription_id": SUB,
            "azure.cluster.resource_group": data["cluster"]["resource_group"],
            "azure.cluster.name": data["cluster"]["name"],
            "azure.resources": ",".join(explicit_ids(data)),
            "azure.interval": "15s",
            "azure.timeout": "10s",
            "azure.discovery_interval": "2m",
        }
        if lab is not None:
            overrides.update({"conntrack.enabled": "true", "conntrack.interval": "5s"})
        exporter = Exporter(load_config(None, environ={}, overrides=overrides))
        url = await exporter.start(host="127.0.0.1", port=0, background=True)
        print(f"soak: {resources} Azure resources, conntrack churn {'on' if lab else 'off (not root)'}, "
              f"{args.minutes:g} min, exporter {url}", flush=True)  # fmt: skip
        samples: list[Sample] = []
        injected: dict[str, int] = {}
        flows: list[subprocess.Popen[str]] = []
        started = time.monotonic()
        end = started + args.minutes * 60
        next_fault = started + args.fault_every
        fault_until = 0.0
        next_churn = started
        next_scrape = started
        next_sample = started
        last_print = started
        scrape_seconds = 0.0
        series = 0
        metrics: dict[tuple[str, str], float] = {}
        churning: asyncio.Future[None] | None = None
        async with aiohttp.ClientSession() as session:
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                if fault_until and now >= fault_until:
                    command(sim, clear=True)
                    fault_until = 0.0
                if now >= next_fault:
                    fault = dict(rng.choice(FAULTS))
                    name = fault["kind"] + str(fault.get("status", ""))
                    injected[name] = injected.get(name, 0) + 1
                    command(sim, clear=True, add=fault)
                    fault_until = now + rng.uniform(10, args.fault_every * 0.8)
                    next_fault = now + rng.uniform(args.fault_every * 0.5, args.fault_every * 1.5)
                if lab is not None and now >= next_churn and (churning is None or churning.done()):
                    # In a worker thread, not awaited: a client waiting on exhausted ports must not stall sampling.
                    churning = asyncio.ensure_future(asyncio.to_thread(churn, lab, flows, rng))
                    next_churn = now + rng.uniform(2, 8)
                if now >= next_scrape:
                    scrape_seconds, metrics, series = await scrape(session, url)
                    next_scrape = now + SCRAPE_EVERY
                if now >= next_sample:
                    samples.append(
                        Sample(
                            now - started,
                            rss_mb(),
                            len(os.listdir("/proc/self/fd")),
                            len(asyncio.all_tasks()),
                            threading.active_count(),
                            scrape_seconds,
                            series,
                        )
                    )
                    next_sample = now + args.sample
                if now - last_print >= 60 and samples:
                    s = samples[-1]
                    print(f"  t={s.t / 60:5.1f} min  rss={s.rss:7.1f} MB  fds={s.fds:3d}  tasks={s.tasks:3d}  "
                          f"threads={s.threads:2d}  scrape={s.scrape_seconds * 1000:6.1f} ms  series={s.series}",
                          flush=True)  # fmt: skip
                    last_print = now
                await asyncio.sleep(0.2)  # the driver's tick; every action above is scheduled by the clock
        if churning is not None:
            await churning
        for proc in flows:
            stop_client(proc)
        errors = {k[1]: v for k, v in metrics.items()}
        await exporter.stop()
    return report(samples, injected, errors, args)


def churn(lab: Any, flows: list[subprocess.Popen[str]], rng: random.Random) -> None:
    """Close a random share of the open client processes (their flows go to TIME_WAIT / expire) and open new ones."""
    from tests.netns.lab import INET_IPS, POD_IPS

    while len(flows) > 6:
        stop_client(flows.pop(rng.randrange(len(flows))))
    plan = [
        {"proto": "tcp", "src": rng.choice(POD_IPS), "dst": rng.choice(INET_IPS), "port": 443,
         "count": rng.randint(5, 40)},
        {"proto": "udp", "src": rng.choice(POD_IPS), "dst": INET_IPS[0], "port": rng.choice((5353, 5354)),
         "count": rng.randint(1, 10)},
    ]  # fmt: skip
    _, proc = lab.clients(lab.pod, plan)
    lab.procs.remove(proc)  # we own its lifetime now
    flows.append(proc)


def stop_client(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()  # the client holds its flows until stdin closes
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def report(samples: list[Sample], injected: dict[str, int], errors: dict[str, float], args: argparse.Namespace) -> int:
    if len(samples) < 4:
        print("soak: too few samples", flush=True)
        return 1
    # At 1,000 resources under random faults the exported series keep filling in for about 10 minutes (measured:
    # 84,600 at minute 5, 95,700 over minutes 10-15, then flat); memory follows the series, so the growth that
    # would reveal a leak is measured after that.
    warm = args.warmup if args.warmup is not None else min(10.0, args.minutes / 3) * 60
    after = [s for s in samples if s.t >= warm] or samples[len(samples) // 2 :]
    head = after[: max(3, len(after) // 10)]
    tail = after[-max(3, len(after) // 10) :]
    rss0 = statistics.median(s.rss for s in head)
    rss1 = statistics.median(s.rss for s in tail)
    growth = (rss1 - rss0) / rss0
    fds0, fds1 = max(s.fds for s in head), max(s.fds for s in tail)
    # The floor, not the peak: a cycle in flight holds one task per query (thousands when the per-resource path
    # is in use); a leak raises the count between cycles.
    tasks0, tasks1 = min(s.tasks for s in head), min(s.tasks for s in tail)
    threads0, threads1 = max(s.threads for s in head), max(s.threads for s in tail)
    worst_scrape = max(s.scrape_seconds for s in samples)
    ok_rss = growth < RSS_GROWTH_TARGET
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("t,rss_mb,fds,tasks,threads,scrape_seconds,series\n")
            for s in samples:
                f.write(f"{s.t:.1f},{s.rss:.1f},{s.fds},{s.tasks},{s.threads},{s.scrape_seconds:.3f},{s.series}\n")
    # A pooled HTTP connection or a worker thread more or less is noise; a leak grows with every cycle or fault.
    ok_fds = fds1 <= fds0 + FD_NOISE
    ok_tasks = tasks1 <= tasks0 + 2
    print()
    print(
        f"soak result ({args.minutes:g} min, warm-up {warm / 60:.1f} min, {len(samples)} samples every {args.sample:g} s)"
    )
    print(f"  RSS after warm-up : {rss0:.1f} MB -> {rss1:.1f} MB = {growth * 100:+.2f}% (target < {RSS_GROWTH_TARGET:.0%})"
          f"  {'ok' if ok_rss else 'MISSED'}")  # fmt: skip
    print(f"  peak RSS          : {max(s.rss for s in samples):.1f} MB")
    print(f"  open fds          : {fds0} -> {fds1}  {'ok (flat)' if ok_fds else 'MISSED (growing)'}")
    print(f"  asyncio tasks     : {tasks0} -> {tasks1} between cycles (peak {max(s.tasks for s in samples)} in a cycle)"
          f"  {'ok (flat)' if ok_tasks else 'MISSED (leak)'}")  # fmt: skip
    print(f"  threads           : {threads0} -> {threads1}")
    print(f"  worst /metrics    : {worst_scrape * 1000:.1f} ms")
    print(
        f"  faults injected   : {sum(injected.values())} ({', '.join(f'{k} x{v}' for k, v in sorted(injected.items()))})"
    )
    print(f"  errors counted    : {', '.join(f'{k}: {v:g}' for k, v in sorted(errors.items())) or 'none'}")
    return 0 if ok_rss and ok_fds and ok_tasks else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds (default: 10 min, or a third of a short run)"
    )
    parser.add_argument("--fault-every", type=float, default=45.0, help="mean seconds between injected faults")
    parser.add_argument("--load-balancers", type=int, default=800)
    parser.add_argument("--nat-gateways", type=int, default=200)
    parser.add_argument("--backends", type=int, default=10)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--csv", help="also write every sample to this CSV file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        return asyncio.run(soak(args, None))
    from tests.netns.lab import INET_IPS, Lab

    with Lab(udp_timeout=60) as lab:
        lab.serve(f"{INET_IPS[0]}:443", f"{INET_IPS[1]}:443")
        enter_netns(lab.node)  # before any thread exists: the exporter, its workers and children live there
        return asyncio.run(soak(args, lab))


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.ERROR)
    raise SystemExit(main())
