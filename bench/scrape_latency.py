"""Benchmark 2: /metrics latency with about 20,000 series in the snapshot while the simulator takes 5 s per answer
(so collection cycles are in flight the whole time), under concurrent scrapers.

    python -m bench.scrape_latency            # 4 scraper processes, every 250 ms for 3 collection cycles
    python -m bench.scrape_latency --quick    # the same for 1 cycle
    python -m bench.scrape_latency --auth     # Prometheus's request with auth off, auth: kubernetes (warm cache),
                                              # and https + auth: kubernetes, each against its own exporter
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import ssl
import statistics
import time
from collections.abc import Iterator
from typing import Any

from bench.common import Front, estate, exporter, kube_auth, measure_cycles, scrape, simulator

SLOW_ANSWER = 5.0
CYCLE = 10.0  # bench.common.exporter's azure.interval
SCRAPERS = 4
PERIOD = 0.25
LOAD_BALANCERS = 226  # x 88 series each (10 backends) + health and self-metrics: about 20,000 series


# What Prometheus 2.x sends: it asks for OpenMetrics first, and for gzip.
PROMETHEUS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
PLAIN: dict[str, str] = {}  # curl: text format, uncompressed


def _scraper(
    port: int, start: float, ticks: int, period: float, headers: dict[str, str], out: Any, cafile: str | None = None
) -> None:
    """One scraper process: like a Prometheus server, it is not the exporter's process and it does not count its
    own decompressing and parsing in the latency (time to the last byte of the body). Every scraper fires on the
    same ticks, so the scrapes of one tick arrive together and queue on each other. It keeps its connection, as
    Prometheus does: with https the handshake is paid once, not per scrape."""
    conn: http.client.HTTPConnection
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, size = [], 0
    for tick in range(ticks):
        # pacing the load on a shared clock, not synchronising on it: a late tick is scraped at once
        time.sleep(max(0.0, start + tick * period - time.time()))
        started = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        latencies.append(time.perf_counter() - started)
        assert resp.status == 200, resp.status
        size = len(body)
    out.put((latencies, size))


def hammer(
    port: int, clients: int, seconds: float, period: float, headers: dict[str, str], cafile: str | None = None
) -> tuple[list[float], int]:
    """``clients`` scraper processes scraping together every ``period`` seconds for ``seconds``."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 2.0  # the processes are up by then
    ticks = int(seconds / period)
    procs = [
        ctx.Process(target=_scraper, args=(port, start, ticks, period, headers, out, cafile)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 600) for _ in procs]
    for p in procs:
        p.join()
    return [x for lat, _ in results for x in lat], max(size for _, size in results)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def _front(kind: str) -> Iterator[tuple[Front | None, Any]]:
    if kind == "off":
        yield None, None
        return
    with kube_auth(tls=kind == "https+auth") as (front, api):
        yield front, api


def auth_rows(seconds: float) -> int:
    """Prometheus's request against the same estate behind three front doors, each its own exporter."""
    data = estate(LOAD_BALANCERS, 0, latency=SLOW_ANSWER)
    rows = []
    with simulator(data) as sim:
        for kind, name in (
            ("off", "auth: none, http"),
            ("auth", "auth: kubernetes, http"),
            ("https+auth", "auth: kubernetes, https"),
        ):
            with (
                _front(kind) as (front, api),
                exporter(data, sim.url, timeout="60s", concurrency=16, front=front) as exp,
            ):
                measure_cycles(exp, 1, timeout=120)
                port = int(exp.url.rsplit(":", 1)[1])
                headers = {**PROMETHEUS, **exp.headers}
                latencies, size = hammer(port, SCRAPERS, seconds, PERIOD, headers, exp.cafile)
                reviews = dict(api.auth.reviews) if api is not None else {}
                rows.append((name, latencies, size, reviews))
    print(
        f"== 2b. /metrics behind the front door: Prometheus's request (OpenMetrics, gzip), {SCRAPERS} scrapers "
        f"every {PERIOD * 1000:.0f} ms for {seconds:.0f} s each, a warm auth cache (TTL 60 s)"
    )
    print(f"{'front door':28} {'scrapes':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  reviews sent")
    base = percentile(rows[0][1], 0.99)
    for name, latencies, _, reviews in rows:
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        sent = ", ".join(f"{k} {v}" for k, v in sorted(reviews.items())) or "-"
        print(
            f"{name:28} {len(latencies):8} {p50 * 1000:7.1f} {p99 * 1000:7.1f} {max(latencies) * 1000:7.1f}  {sent}"
            f"   (p99 x{p99 / base:.2f} of auth: none)"
        )
    print(f"  the check itself, a warm-cache verdict in process: {warm_verdict_us():.1f} us per request")
    return 0


def warm_verdict_us(n: int = 50_000) -> float:
    """What auth: kubernetes adds to a scrape once its token is cached: one verdict, timed in process (no HTTP),
    with a service-account-sized token (about 900 bytes)."""
    import asyncio

    from prometheus_client.registry import CollectorRegistry

    from snat_exporter.web.kubeauth import ApiReviewer, KubernetesAuth
    from snat_exporter.web.settings import HttpConfig
    from snat_exporter.web.verdict import Verdict

    class Allow(ApiReviewer):
        def review(self, token: str, path: str) -> Verdict:
            return Verdict.ALLOWED

    async def run() -> float:
        auth = KubernetesAuth(Allow(lambda: None, 1.0), HttpConfig(), CollectorRegistry())  # type: ignore[arg-type, return-value]
        headers = {"Authorization": "Bearer " + "x" * 900}
        await auth.verdict("/metrics", headers)
        started = time.perf_counter()
        for _ in range(n):
            await auth.verdict("/metrics", headers)
        return (time.perf_counter() - started) / n * 1e6

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--auth", action="store_true", help="compare auth off / auth: kubernetes / https + auth")
    args = parser.parse_args(argv)
    if args.auth:
        return auth_rows(CYCLE * (1 if args.quick else 3))
    # Long enough to span whole collection cycles (interval 10 s, answers after 5 s), so that scrapes also land
    # while answers are decoded, folded into the caches, and the next snapshot is built and rendered.
    seconds = CYCLE * (1 if args.quick else 3)
    data = estate(LOAD_BALANCERS, 0, latency=SLOW_ANSWER)
    rows = []
    with simulator(data) as sim, exporter(data, sim.url, timeout="60s", concurrency=16) as exp:
        cycles = measure_cycles(exp, 1, timeout=120)  # the first snapshot is in, and one more cycle
        series = len(scrape(exp.url))
        port = int(exp.url.rsplit(":", 1)[1])
        for name, headers in (("Prometheus (OpenMetrics, gzip)", PROMETHEUS), ("plain text, uncompressed", PLAIN)):
            latencies, size = hammer(port, SCRAPERS, seconds, PERIOD, headers)
            rows.append((name, latencies, size))
        rss, _ = exp.rss_mb()
    print(f"== 2. /metrics under load: {series} series, simulator {SLOW_ANSWER:.0f} s per answer")
    print(
        f"{SCRAPERS} scraper processes, all scraping every {PERIOD * 1000:.0f} ms for {seconds:.0f} s "
        f"(collection cycle {cycles[-1].seconds:.1f} s, every {CYCLE:.0f} s), exporter RSS {rss:.0f} MB"
    )
    print(f"{'request':32} {'scrapes':>8} {'body MB':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'mean ms':>8}")
    for name, latencies, size in rows:
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        print(
            f"{name:32} {len(latencies):8} {size / 1e6:8.2f} {p50 * 1000:7.1f} {p99 * 1000:7.1f} "
            f"{max(latencies) * 1000:7.1f} {statistics.mean(latencies) * 1000:8.1f}"
        )
    p99 = percentile(rows[0][1], 0.99)
    print(f"  target p99 < 20 ms (Prometheus's request): {'met' if p99 < 0.020 else 'MISSED'} ({p99 * 1000:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
