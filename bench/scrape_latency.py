"""Benchmark 2: /metrics latency with about 20,000 series in the snapshot while the simulator takes 5 s per answer
(so collection cycles are in flight the whole time), under concurrent scrapers.

    python -m bench.scrape_latency            # 8 scrapers x 50 requests
    python -m bench.scrape_latency --quick    # 4 scrapers x 25 requests
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from bench.common import estate, exporter, measure_cycles, scrape, simulator

SLOW_ANSWER = 5.0
LOAD_BALANCERS = 226  # x 88 series each (10 backends) + health and self-metrics: about 20,000 series


async def hammer(url: str, clients: int, requests: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    sizes: list[int] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in range(requests):
            started = time.perf_counter()
            async with session.get(url + "/metrics") as resp:
                body = await resp.read()
                assert resp.status == 200
            latencies.append(time.perf_counter() - started)
            sizes.append(len(body))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, max(sizes)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    clients, requests = (4, 25) if args.quick else (8, 50)
    data = estate(LOAD_BALANCERS, 0, latency=SLOW_ANSWER)
    with simulator(data) as sim, exporter(data, sim.url, timeout="60s", concurrency=16) as exp:
        measure_cycles(exp, 0, timeout=120)  # the first snapshot is in
        series = len(scrape(exp.url))
        # the next cycle is now waiting on 5 s answers while we scrape
        latencies, size = asyncio.run(hammer(exp.url, clients, requests))
        rss, _ = exp.rss_mb()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"== 2. /metrics under load: {series} series ({size / 1e6:.1f} MB), simulator {SLOW_ANSWER:.0f} s per answer")
    print(f"{clients} concurrent scrapers x {requests} requests = {len(latencies)} scrapes, exporter RSS {rss:.0f} MB")
    print(
        f"latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms, "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    print(f"one scrape alone ~ p50 / concurrent scrapers = {p50 / clients * 1000:.1f} ms of rendering")
    print(f"  target p99 < 20 ms: {'met' if p99 < 0.020 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
