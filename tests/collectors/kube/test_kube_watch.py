"""The collector through the real ``kubernetes`` client against the fake API server: list, watch, resume,
relist, failures, and what an SRE sees on /metrics."""

from __future__ import annotations

import logging
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.collectors.base import CollectError
from snat_exporter.identity import EBPF_HOST_ROUTING_LABEL
from snat_exporter.server import Exporter
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import node_object, pod_object
from tests.collectors.kube.conftest import Harness, must
from tests.conftest import wait_until


def node_info(snapshot) -> set[tuple[str, str, str, str]]:
    out = set()
    for family in snapshot.families:
        for s in family.samples:
            if s.name == "snat_kube_node_info":
                out.add((s.labels["node"], s.labels["internal_ip"], s.labels["node_pool"], s.labels["zone"]))
    return out


def sample(snapshot, name: str, **labels: str) -> float | None:
    for family in snapshot.families:
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def test_node_added_later_is_named_on_the_next_scrape(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("aks-system-0", "10.224.0.4", pool="system", zone="eastus-1"))
    collector = harness.collector()
    exporter = Exporter(harness.config(), clock=harness.clock, collectors=[collector])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        async with aiohttp.ClientSession() as session:

            async def scrape() -> dict[str, dict[str, str]]:
                async with session.get(url + "/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
                return {
                    s.labels["internal_ip"]: s.labels
                    for f in text_string_to_metric_families(text)
                    for s in f.samples
                    if s.name == "snat_kube_node_info"
                }

            assert await exporter.runners["kubernetes"].run_once()
            assert set(await scrape()) == {"10.224.0.4"}
            kubeapi.add(node_object("aks-user-7", "10.224.0.11", pool="user", zone="eastus-3"))
            await wait_until(lambda: collector.identity.node_by_ip("10.224.0.11"), "the watch to deliver the node")
            assert await exporter.runners["kubernetes"].run_once()
            info = await scrape()
            assert info["10.224.0.11"] == {
                "node": "aks-user-7",
                "internal_ip": "10.224.0.11",
                "node_pool": "user",
                "zone": "eastus-3",
            }
            # Scale-in: the node's series goes with it.
            kubeapi.delete("nodes", "aks-system-0")
            await wait_until(lambda: collector.identity.node_by_ip("10.224.0.4") is None, "the node deletion")
            assert await exporter.runners["kubernetes"].run_once()
            assert set(await scrape()) == {"10.224.0.11"}
    finally:
        await exporter.stop()
    assert kubeapi.requests[("list", "nodes")] == 1, "watch, not polling: one list for the whole test"


async def test_pod_ip_reused_by_a_new_pod_names_the_new_pod(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(
        pod_object("shop", "cart-7d9f8-abcde", "10.244.1.7", node="n1", host_ip="10.224.0.4",
                   owner=("ReplicaSet", "cart-7d9f8"), labels={"pod-template-hash": "7d9f8"}),
    )  # fmt: skip
    collector = harness.collector(pods=True, nodes=False, node_name="n1")
    await collector.start()
    await collector.collect()
    pod = must(collector.identity.pod_by_ip("10.244.1.7"))
    assert (pod.namespace, pod.name, pod.workload, pod.workload_kind) == (
        "shop",
        "cart-7d9f8-abcde",
        "cart",
        "Deployment",
    )
    kubeapi.delete("pods", "cart-7d9f8-abcde", "shop")
    kubeapi.add(pod_object("ops", "backup-29385120-zzz", "10.244.1.7", node="n1", owner=("Job", "backup-29385120")))
    pod = await wait_until(
        lambda: (p := collector.identity.pod_by_ip("10.244.1.7")) and p.name == "backup-29385120-zzz" and p,
        "the new pod to own the IP",
    )
    assert (pod.namespace, pod.workload, pod.workload_kind) == ("ops", "backup", "CronJob")


async def test_dropped_watch_resumes_from_its_resource_version_without_a_relist(
    harness: Harness, kubeapi: KubeApiServer
) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector()
    await collector.start()
    await collector.collect()
    await wait_until(lambda: kubeapi.open_watches("nodes") == 1, "the node watch")
    seen = kubeapi.resource_version
    # Cut the connection while the server refuses new watches, and change a node meanwhile: the change must come
    # from the history, after the resourceVersion the client had reached.
    kubeapi.fail(503, resources=["nodes"])
    assert kubeapi.drop_watches() == 1
    await wait_until(lambda: harness.restarts("nodes", "dropped") >= 1, "the client to notice the drop")
    kubeapi.add(node_object("n2", "10.224.0.5"))
    kubeapi.heal()
    await wait_until(lambda: collector.identity.node_by_ip("10.224.0.5"), "the change made while disconnected")
    assert kubeapi.requests[("list", "nodes")] == 1, "a dropped watch must not cost a full relist"
    assert ("nodes", str(seen)) in kubeapi.watch_versions[1:], kubeapi.watch_versions
    assert harness.restarts("nodes", "gone") == 0


async def test_resume_from_a_bookmark_survives_compaction(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector(pods=True)
    await collector.start()
    await collector.collect()
    await wait_until(lambda: kubeapi.open_watches() == 2, "both watches")
    # Pods change a lot; nodes do not: the node watch only stays current thanks to bookmarks.
    for i in range(5):
        kubeapi.add(pod_object("default", f"p{i}", f"10.244.0.{i + 2}"))
    kubeapi.bookmark()
    await wait_until(lambda: collector.reflectors[0].resource_version == str(kubeapi.resource_version), "bookmark")
    kubeapi.compact()
    kubeapi.drop_watches()
    await wait_until(lambda: kubeapi.open_watches() == 2, "both watches back")
    assert kubeapi.requests[("list", "nodes")] == 1, "the bookmark's resourceVersion is still in the history"
    assert harness.restarts("nodes", "gone") == 0


async def test_410_gone_relists_and_catches_up(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"), node_object("n2", "10.224.0.5"))
    collector = harness.collector()
    await collector.start()
    await collector.collect()
    await wait_until(lambda: kubeapi.open_watches("nodes") == 1, "the node watch")
    kubeapi.fail(503, resources=["nodes"])
    kubeapi.drop_watches()
    await wait_until(lambda: harness.restarts("nodes", "dropped") >= 1, "the client to notice the drop")
    # While the client is away, n1 is replaced and the history it would resume from is compacted away.
    kubeapi.delete("nodes", "n1")
    kubeapi.add(node_object("n3", "10.224.0.6"))
    kubeapi.compact()
    kubeapi.heal()
    await wait_until(lambda: collector.identity.node_by_ip("10.224.0.6"), "the relist")
    assert collector.identity.node_by_ip("10.224.0.4") is None, "a node deleted during the gap is gone after relist"
    assert kubeapi.requests[("list", "nodes")] == 2
    assert harness.restarts("nodes", "gone") == 1
    snapshot = await collector.collect()
    assert node_info(snapshot) == {("n2", "10.224.0.5", "", ""), ("n3", "10.224.0.6", "", "")}
    assert sample(snapshot, "snat_exporter_kube_cache_objects", resource="nodes") == 2


async def test_410_as_an_http_status_on_the_watch_also_relists(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector()
    await collector.start()
    await collector.collect()
    await wait_until(lambda: kubeapi.open_watches("nodes") == 1, "the node watch")
    kubeapi.fail(410, resources=["nodes"], times=1)
    kubeapi.drop_watches()
    await wait_until(lambda: kubeapi.requests[("list", "nodes")] == 2, "the relist after an HTTP 410")
    assert harness.restarts("nodes", "gone") == 1


async def test_api_down_at_start_then_up(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4", pool="system"))
    collector = harness.collector()  # kubeconfig points at the port, which stops answering now
    await kubeapi.stop()
    exporter = Exporter(harness.config(), clock=harness.clock, collectors=[collector])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        assert not await exporter.runners["kubernetes"].run_once()
        assert (exporter.store.get("kubernetes").last_error or "").startswith("unreachable")
        async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
            assert resp.status == 200, "the exporter keeps serving while the API server is down"
            text = await resp.text()
        assert 'snat_exporter_collector_errors_total{collector="kubernetes",reason="unreachable"} 1.0' in text
        assert collector.identity.node_by_ip("10.224.0.4") is None  # other collectors keep the bare IP
        await kubeapi.start()
        await wait_until(lambda: collector.identity.node_by_ip("10.224.0.4"), "the cache to sync once the API is up")
        assert await exporter.runners["kubernetes"].run_once()
    finally:
        await exporter.stop()
    assert harness.restarts("nodes", "unreachable") >= 1


async def test_missing_rbac_is_reported_as_forbidden_naming_the_resource(
    harness: Harness, kubeapi: KubeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    kubeapi.fail(403, resources=["pods"])
    collector = harness.collector(pods=True, node_name="n1")
    with caplog.at_level(logging.WARNING, logger="snat_exporter.kube"):
        await collector.start()
        with pytest.raises(CollectError) as err:
            await collector.collect()
    assert err.value.reason == "forbidden"
    assert "pods" in str(err.value)
    rbac = [r for r in caplog.records if "missing RBAC" in r.getMessage()]
    assert len(rbac) == 1, "logged once, not once per retry"
    assert (getattr(rbac[0], "resource", None), getattr(rbac[0], "verb", None)) == ("pods", "list")
    # The node cache is fine meanwhile: names keep flowing to the Azure collector.
    assert must(collector.identity.node_by_ip("10.224.0.4")).name == "n1"
    await wait_until(lambda: harness.restarts("pods", "forbidden") >= 2, "retries with back-off")
    kubeapi.heal()
    await wait_until(lambda: collector.reflectors[1].synced, "the pod cache once RBAC is granted")
    await collector.collect()


async def test_host_network_pod_ips_are_not_attributed(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(
        pod_object("kube-system", "kube-proxy-x", "10.224.0.4", node="n1", host_ip="10.224.0.4",
                   owner=("DaemonSet", "kube-proxy"), host_network=True),
        pod_object("kube-system", "coredns-5d-abc", "10.244.0.9", node="n1", host_ip="10.224.0.4",
                   owner=("ReplicaSet", "coredns-5d"), labels={"pod-template-hash": "5d"}),
    )  # fmt: skip
    collector = harness.collector(pods=True, nodes=False, node_name="n1")
    await collector.start()
    snapshot = await collector.collect()
    assert collector.identity.pod_by_ip("10.224.0.4") is None, "node-IP flows are the host's"
    assert must(collector.identity.pod_by_ip("10.244.0.9")).workload == "coredns"
    assert sample(snapshot, "snat_exporter_kube_cache_objects", resource="pods") == 2


async def test_node_agent_watches_only_its_own_node(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(
        pod_object("a", "mine", "10.244.1.2", node="aks-np-1"),
        pod_object("a", "theirs", "10.244.2.2", node="aks-np-2"),
        pod_object("a", "pending", None),
    )
    # The node name comes from the downward API ($NODE_NAME) when the config does not set it.
    collector = harness.collector(environ={"NODE_NAME": "aks-np-1"}, pods=True, nodes=False)
    await collector.start()
    snapshot = await collector.collect()
    assert sample(snapshot, "snat_exporter_kube_cache_objects", resource="pods") == 1
    assert collector.identity.pod_by_ip("10.244.2.2") is None
    # A pending pod scheduled onto this node enters the selection (the server sends ADDED).
    kubeapi.apply(pod_object("a", "pending", "10.244.1.3", node="aks-np-1"))
    await wait_until(lambda: collector.identity.pod_by_ip("10.244.1.3"), "the pod scheduled onto this node")
    kubeapi.apply(pod_object("a", "elsewhere", "10.244.2.3", node="aks-np-2"))
    kubeapi.delete("pods", "mine", "a")
    await wait_until(lambda: collector.identity.pod_by_ip("10.244.1.2") is None, "the deletion")
    assert len(collector.pods) == 1


async def test_cache_unconfirmed_for_max_age_is_dropped(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector(max_age="10m")
    await collector.start()
    snapshot = await collector.collect()
    assert sample(snapshot, "snat_exporter_kube_last_sync_timestamp_seconds", resource="nodes") == harness.clock.now
    await kubeapi.stop()
    await wait_until(lambda: harness.restarts("nodes", "unreachable") >= 1, "the outage to be noticed")
    # Within max_age the names keep coming: a short API outage changes nothing downstream.
    harness.clock.advance(300)
    await collector.collect()
    assert collector.identity.node_by_ip("10.224.0.4") is not None
    harness.clock.advance(301)
    await wait_until(lambda: collector.identity.node_by_ip("10.224.0.4") is None, "the cache to be dropped")
    with pytest.raises(CollectError) as err:
        await collector.collect()
    assert err.value.reason == "unreachable"
    await kubeapi.start()
    await wait_until(lambda: collector.identity.node_by_ip("10.224.0.4"), "a relist once the API is back")


async def test_close_stops_open_watches_promptly(harness: Harness, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector(pods=True, watch_timeout="30m")
    await collector.start()
    await collector.collect()
    await wait_until(lambda: kubeapi.open_watches() == 2, "both watches")
    started = time.monotonic()
    await collector.close()
    assert time.monotonic() - started < 1.0
    assert all(r.join(0) for r in collector.reflectors), "no watch thread left behind"
    await wait_until(lambda: kubeapi.open_watches() == 0, "the server to see the watches close")


async def test_watch_ending_at_its_timeout_resumes_from_the_final_bookmark(
    harness: Harness, kubeapi: KubeApiServer
) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector(watch_timeout="1s")
    await collector.start()
    await collector.collect()
    kubeapi.add(pod_object("default", "p", "10.244.0.2"))  # moves the global resourceVersion, not the node watch
    await wait_until(lambda: len(kubeapi.watch_versions) >= 2, "the watch to reach its timeout and resume", 5)
    assert harness.restarts("nodes", "expired") == 1
    assert ("nodes", str(kubeapi.resource_version)) in kubeapi.watch_versions
    assert kubeapi.requests[("list", "nodes")] == 1


async def test_60_nodes_of_the_steady_scenario_all_resolve(harness: Harness, kubeapi: KubeApiServer) -> None:
    try:
        from snat_exporter.simulator.kubeobjects import scenario_nodes

        nodes = scenario_nodes("steady")
    except Exception as exc:
        pytest.fail(f"the Azure simulator's steady scenario is needed (snat_exporter.simulator.scenario): {exc}")
    assert len(nodes) == 60
    kubeapi.add(*nodes)
    collector = harness.collector(page_size=25)  # three pages
    await collector.start()
    snapshot = await collector.collect()
    expected = {
        (n["metadata"]["name"], n["status"]["addresses"][1]["address"]) for n in kubeapi.objects("nodes")
    }  # fmt: skip
    assert {(name, ip) for name, ip, _, _ in node_info(snapshot)} == expected
    for name, ip in expected:
        assert must(collector.identity.node_by_ip(ip)).name == name
    assert kubeapi.requests[("list", "nodes")] == 3


async def test_node_agent_watches_its_own_node_object_for_the_datapath_label(
    harness: Harness, kubeapi: KubeApiServer
) -> None:
    kubeapi.add(
        node_object("aks-np-1", "10.224.0.4", labels={EBPF_HOST_ROUTING_LABEL: "true"}),
        node_object("aks-np-2", "10.224.0.5", labels={EBPF_HOST_ROUTING_LABEL: "true"}),
        node_object("aks-np-3", "10.224.0.6"),
    )
    collector = harness.collector(environ={"NODE_NAME": "aks-np-1"}, pods=True, nodes=False)
    await collector.start()
    snapshot = await collector.collect()
    assert must(collector.identity.node_by_name("aks-np-1")).ebpf_host_routing
    assert collector.identity.node_by_name("aks-np-2") is None, "one Node object, not the fleet"
    assert sample(snapshot, "snat_exporter_kube_cache_objects", resource="nodes") == 1
    assert not [s for f in snapshot.families for s in f.samples if s.name == "snat_kube_node_info"], (
        "the join series comes from the cluster exporter only"
    )
    # The label removed (the pool moved off eBPF host routing): the watch brings the change.
    kubeapi.apply(node_object("aks-np-1", "10.224.0.4"))
    await wait_until(
        lambda: not must(collector.identity.node_by_name("aks-np-1")).ebpf_host_routing, "the label's removal"
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (
            {"kind": "Status", "status": "Failure", "reason": "InternalError", "message": "etcd leader changed"},
            "http_5xx",
        ),
        ({"kind": "Status", "status": "Failure", "reason": "Expired", "message": "too old resource version"}, "gone"),
        ({"kind": "Status", "status": "Failure", "message": "no reason, no code"}, "malformed"),
    ],
    ids=["InternalError", "Expired", "bare"],
)
async def test_an_error_event_without_a_code_is_not_counted_as_tls(
    harness: Harness, kubeapi: KubeApiServer, status: dict[str, str], reason: str
) -> None:
    """Issue 15: a watch ERROR event whose Status has no `code` was counted as reason="tls" (status 0 is how the
    client reports a TLS failure). Its reason decides, as for the same error answered as HTTP."""
    kubeapi.add(node_object("n1", "10.224.0.4"))
    collector = harness.collector()
    await collector.start()
    await collector.collect()
    await wait_until(lambda: kubeapi.open_watches("nodes") == 1, "the node watch")
    for watch in list(kubeapi._watches):  # the event goes out on the open watch, as the API server sends it
        if watch.query.resource == "nodes":
            watch.queue.put_nowait(("ERROR", status))
    await wait_until(lambda: harness.restarts("nodes", reason) >= 1, f"the error event counted as {reason}")
    assert harness.restarts("nodes", "tls") == 0
    kubeapi.add(node_object("n2", "10.224.0.5"))  # and the watch goes on
    await wait_until(lambda: collector.identity.node_by_ip("10.224.0.5"), "the watch to resume")


async def test_node_agent_reads_ciliums_configmap_for_the_datapath_and_copes_without_it(
    harness: Harness, kubeapi: KubeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    kubeapi.add(node_object("aks-np-1", "10.224.0.4"))
    collector = harness.collector(environ={"NODE_NAME": "aks-np-1"}, pods=True, nodes=False)
    await collector.start()
    with caplog.at_level(logging.INFO, logger="snat_exporter.kube"):
        await collector.collect()  # no Cilium: 404, said once at INFO, nothing known
        await collector.collect()
        assert collector.identity.cilium_config() is None
        keys = {"enable-bpf-masquerade": "true", "enable-host-legacy-routing": "false", "routing-mode": "native"}
        kubeapi.configmaps[("kube-system", "cilium-config")] = keys
        await collector.collect()
        assert collector.identity.cilium_config() == keys
        # Forbidden (RBAC without the Role): back to unknown, said once at WARNING; the run itself succeeds.
        kubeapi.fail(403, resources={"configmaps"})
        snapshot = await collector.collect()
        assert collector.identity.cilium_config() is None
        assert sample(snapshot, "snat_exporter_kube_cache_objects", resource="pods") == 0
    said = [(r.levelno, r.__dict__["outcome"]) for r in caplog.records if r.getMessage() == "cilium-config"]
    assert said == [(logging.INFO, "http 404"), (logging.INFO, "read"), (logging.WARNING, "http 403")]
    assert kubeapi.requests[("get", "configmaps")] == 4, "one GET per run"
