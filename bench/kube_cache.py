"""Memory and lookup cost of the Kubernetes identity cache at the AKS maximum scale (5,000 nodes, 110,000 pods).

The cache is built through the code path the watch uses (``Index.apply`` on API-shaped JSON objects), then once
more at a smaller scale through the real ``kubernetes`` client listing the fake API server page by page.

    .venv/bin/python -m bench.kube_cache [--nodes 5000] [--pods 110000] [--server-pods 20000]

Prints RSS before/after (MB), the time per IP lookup with 1,000 and with 110,000 pods (O(1): the ratio stays
near 1), and checks the target: < 200 MB RSS for the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import random
import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client  # noqa: F401  (imported up front: the exporter process carries it, so "before" does too)

from snat_exporter.collectors.kube.cache import KubeIdentity, NodeIndex, PodIndex
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import node_object, pod_object

TARGET_RSS_MB = 200.0
LOOKUPS = 500_000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def node_ips(count: int) -> list[str]:
    base = int(ipaddress.IPv4Address("10.224.0.4"))
    return [str(ipaddress.IPv4Address(base + i)) for i in range(count)]


def pod_ips(count: int) -> list[str]:
    base = int(ipaddress.IPv4Address("10.244.0.2"))
    return [str(ipaddress.IPv4Address(base + i)) for i in range(count)]


def pods(count: int, nodes: int) -> Iterator[dict[str, Any]]:
    """Pods spread over 400 namespaces and a mix of workload kinds, as the API would send them."""
    hosts = node_ips(nodes)
    for i, ip in enumerate(pod_ips(count)):
        ns = f"team-{i % 400}"
        node = i % nodes
        kind = i % 10
        if kind < 6:
            rs = f"svc-{i % 3000}-7d9f8c6b5"
            owner, name, labels = ("ReplicaSet", rs), f"{rs}-{i:05x}", {"pod-template-hash": "7d9f8c6b5"}
        elif kind < 8:
            owner, name, labels = ("StatefulSet", f"db-{i % 500}"), f"db-{i % 500}-{i}", {}
        elif kind < 9:
            owner, name, labels = ("DaemonSet", "cilium"), f"cilium-{i:05x}", {}
        else:
            job = f"report-{i % 200}-29385120"
            owner, name, labels = ("Job", job), f"{job}-{i:05x}", {}
        yield pod_object(
            ns,
            name,
            ip,
            node=f"aks-np-{node}",
            host_ip=hosts[node],
            owner=owner,
            labels={"app": name.rsplit("-", 1)[0], **labels},
        )


def time_lookups(identity: KubeIdentity, ips: list[str]) -> float:
    """Seconds per pod_by_ip, over LOOKUPS random hits. Each query is a new string object (as an IP parsed from
    a conntrack dump is), so the small index does not win by re-using a few hot, hash-cached strings."""
    rng = random.Random(7)
    sample = [(rng.choice(ips) + ".")[:-1] for _ in range(LOOKUPS)]
    lookup = identity.pod_by_ip
    start = time.perf_counter()
    for ip in sample:
        lookup(ip)
    return (time.perf_counter() - start) / LOOKUPS


def build(n_nodes: int, n_pods: int) -> tuple[KubeIdentity, float]:
    nodes, pod_index = NodeIndex(), PodIndex()
    start = time.perf_counter()
    for i, ip in enumerate(node_ips(n_nodes)):
        nodes.apply("ADDED", node_object(f"aks-np-{i}", ip, pool=f"np{i % 8}", zone=f"eastus-{i % 3 + 1}"))
    for obj in pods(n_pods, n_nodes):
        pod_index.apply("ADDED", obj)
    return KubeIdentity(nodes, pod_index), time.perf_counter() - start


def through_server(n_pods: int) -> tuple[float, float, int]:
    """List n_pods from the fake API server with the real client (pages of 500); (seconds, RSS delta MB, lists)."""
    from kubernetes.client import ApiClient, Configuration, CoreV1Api

    from snat_exporter.collectors.kube.watch import Reflector

    loop = asyncio.new_event_loop()
    server = KubeApiServer()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server.add(*pods(n_pods, 100))
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(120)
    gc.collect()
    before = rss_mb()
    index = PodIndex()
    api = ApiClient(Configuration(host=server.url))
    reflector = Reflector("pods", CoreV1Api(api).list_pod_for_all_namespaces, index, page_size=500)
    start = time.perf_counter()
    reflector._list()  # the list half of list+watch, exactly as the watch thread runs it
    elapsed = time.perf_counter() - start
    assert len(index) == n_pods, len(index)
    gc.collect()
    grown = rss_mb() - before
    api.close()
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    return elapsed, grown, server.requests[("list", "pods")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=110_000)
    parser.add_argument("--server-pods", type=int, default=20_000, help="0 skips the pass through the fake server")
    args = parser.parse_args()

    gc.collect()
    before = rss_mb()
    print(f"RSS before (interpreter + kubernetes client + exporter imported): {before:.1f} MB")

    per_size = {}
    hot = {}
    for n in (1000, 10_000):
        small, _ = build(100, n)
        per_size[n] = time_lookups(small, pod_ips(n))
        hot[n] = time_lookups(small, pod_ips(100))
        del small
        gc.collect()
    per_small = per_size[1000]

    big, seconds = build(args.nodes, args.pods)
    gc.collect()
    after = rss_mb()
    print(f"cache of {len(big.nodes):,} nodes and {len(big.pods):,} pods built in {seconds:.1f} s")
    print(
        f"RSS after: {after:.1f} MB (cache: +{after - before:.1f} MB, {(after - before) * 2**20 / args.pods:.0f} B/pod)"
    )
    print(f"peak RSS while building: {peak_rss_mb():.1f} MB")
    per_big = time_lookups(big, pod_ips(args.pods))
    print(
        f"pod_by_ip: {per_small * 1e9:.0f} ns with 1,000 pods, {per_size[10_000] * 1e9:.0f} ns with 10,000, "
        f"{per_big * 1e9:.0f} ns with {args.pods:,} (110x the pods -> {per_big / per_small:.2f}x the time: hash "
        "lookups, the rest is CPU cache misses on a larger working set)"
    )
    hot_big = time_lookups(big, pod_ips(100))
    print(
        f"pod_by_ip over 100 hot IPs (the algorithm without CPU cache effects): {hot[1000] * 1e9:.0f} ns with "
        f"1,000 pods, {hot_big * 1e9:.0f} ns with {args.pods:,} (ratio {hot_big / hot[1000]:.2f})"
    )
    node_ip = node_ips(args.nodes)[args.nodes // 2]
    assert big.node_by_ip(node_ip) is not None and big.pod_by_ip(node_ip) is None
    verdict = "OK" if after < TARGET_RSS_MB else "OVER"
    print(f"target: < {TARGET_RSS_MB:.0f} MB RSS for the process -> {after:.1f} MB {verdict}")

    if args.server_pods:
        del big
        gc.collect()
        elapsed, grown, lists = through_server(args.server_pods)
        print(
            f"through the fake API server and the real client: {args.server_pods:,} pods listed in {lists} pages "
            f"in {elapsed:.2f} s ({args.server_pods / elapsed:,.0f} pods/s), cache +{grown:.1f} MB RSS"
        )


if __name__ == "__main__":
    main()
