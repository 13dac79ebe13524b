"""The IP indexes on their own: owners, IP reuse, host network, relists. Fed with the server's own object shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from snat_exporter.collectors.kube.cache import KubeIdentity, NodeIndex, PodIndex, owner_workload
from snat_exporter.identity import NodeInfo
from snat_exporter.simulator.kubeobjects import node_object, pod_object
from tests.collectors.kube.conftest import must


def test_deployment_statefulset_daemonset_cronjob_owners_resolved_by_name() -> None:
    rs = pod_object(
        "shop", "web-5d8f7c9b4-x2x9k", "10.1.0.3", owner=("ReplicaSet", "web-5d8f7c9b4"),
        labels={"pod-template-hash": "5d8f7c9b4"},
    )  # fmt: skip
    assert owner_workload(rs) == ("Deployment", "web")
    # A ReplicaSet made by hand (no matching template hash) is its own workload.
    bare_rs = pod_object("shop", "legacy-abcde", "10.1.0.4", owner=("ReplicaSet", "legacy"))
    assert owner_workload(bare_rs) == ("ReplicaSet", "legacy")
    cron = pod_object("ops", "backup-29385120-q7k2m", "10.1.0.5", owner=("Job", "backup-29385120"))
    assert owner_workload(cron) == ("CronJob", "backup")
    job = pod_object("ops", "migrate-v2-7xk2p", "10.1.0.6", owner=("Job", "migrate-v2"))
    assert owner_workload(job) == ("Job", "migrate-v2")
    short_number = pod_object("ops", "job-42-abcde", "10.1.0.7", owner=("Job", "job-42"))
    assert owner_workload(short_number) == ("Job", "job-42")
    assert owner_workload(pod_object("db", "pg-0", "10.1.0.8", owner=("StatefulSet", "pg"))) == ("StatefulSet", "pg")
    assert owner_workload(pod_object("kube-system", "cilium-x", "10.1.0.9", owner=("DaemonSet", "cilium"))) == (
        "DaemonSet",
        "cilium",
    )
    assert owner_workload(pod_object("default", "debug", "10.1.0.10")) == ("", "")


def test_pod_lookup_names_namespace_pod_and_workload() -> None:
    pods = PodIndex()
    pods.apply(
        "ADDED",
        pod_object(
            "shop", "web-5d8f7c9b4-x2x9k", ["10.1.0.3", "fd00::3"], node="n1", host_ip="10.0.0.4",
            owner=("ReplicaSet", "web-5d8f7c9b4"), labels={"pod-template-hash": "5d8f7c9b4"},
        ),
    )  # fmt: skip
    for ip in ("10.1.0.3", "fd00::3"):  # dual-stack: every podIPs entry
        info = pods.get(ip)
        assert info is not None
        assert (info.namespace, info.name, info.workload, info.workload_kind) == (
            "shop",
            "web-5d8f7c9b4-x2x9k",
            "web",
            "Deployment",
        )
    assert pods.get("10.1.0.99") is None


def test_deleted_pod_ip_reused_by_new_pod_names_the_new_pod_whatever_the_event_order() -> None:
    pods = PodIndex()
    old = pod_object("a", "old", "10.1.0.3", node="n1")
    new = pod_object("b", "new", "10.1.0.3", node="n1")
    pods.apply("ADDED", old)
    pods.apply("DELETED", old)
    pods.apply("ADDED", new)
    assert must(pods.get("10.1.0.3")).name == "new"
    # The new pod's ADDED can arrive before the old pod's DELETED: the late delete must not erase the new owner.
    pods = PodIndex()
    pods.apply("ADDED", old)
    pods.apply("ADDED", new)
    pods.apply("DELETED", old)
    assert must(pods.get("10.1.0.3")).name == "new"


def test_terminating_pod_updates_do_not_take_the_ip_back_from_its_successor() -> None:
    pods = PodIndex()
    old = pod_object("a", "old", "10.1.0.3")
    pods.apply("ADDED", old)
    pods.apply("ADDED", pod_object("b", "new", "10.1.0.3"))
    old["metadata"]["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    pods.apply("MODIFIED", old)
    assert must(pods.get("10.1.0.3")).name == "new"
    # If the newer claimant goes first, the IP names the one pod still holding it.
    pods.apply("DELETED", pod_object("b", "new", "10.1.0.3"))
    assert must(pods.get("10.1.0.3")).name == "old"
    pods.apply("DELETED", old)
    assert pods.get("10.1.0.3") is None


def test_completed_pods_keep_their_ip_in_status_but_do_not_claim_it() -> None:
    pods = PodIndex()
    done = pod_object("ops", "backup-29385120-q7k2m", "10.1.0.7", owner=("Job", "backup-29385120"), phase="Succeeded")
    pods.apply("ADDED", done)
    assert pods.get("10.1.0.7") is None
    running = pod_object("shop", "cart-0", "10.1.0.7", owner=("StatefulSet", "cart"))
    pods.apply("ADDED", running)
    pods.apply("MODIFIED", done)  # a later update of the finished pod does not steal the IP back
    assert must(pods.get("10.1.0.7")).name == "cart-0"
    assert len(pods) == 2


def test_pod_losing_its_ip_or_running_to_completion_is_unindexed() -> None:
    pods = PodIndex()
    pods.apply("ADDED", pod_object("ops", "task", "10.1.0.8"))
    pods.apply("MODIFIED", pod_object("ops", "task", "10.1.0.8", phase="Failed"))
    assert pods.get("10.1.0.8") is None
    pods.apply("MODIFIED", pod_object("ops", "task", None, phase="Pending"))
    assert pods.get("10.1.0.8") is None


def test_host_network_pods_and_node_ips_never_name_a_pod() -> None:
    nodes, pods = NodeIndex(), PodIndex()
    identity = KubeIdentity(nodes, pods)
    nodes.apply("ADDED", node_object("aks-np-0", "10.0.0.4", pool="np", zone="eastus-1"))
    pods.apply(
        "ADDED",
        pod_object("kube-system", "kube-proxy-abc", "10.0.0.4", node="aks-np-0", host_ip="10.0.0.4",
                   owner=("DaemonSet", "kube-proxy"), host_network=True),
    )  # fmt: skip
    assert identity.pod_by_ip("10.0.0.4") is None
    assert identity.node_by_ip("10.0.0.4") == NodeInfo("aks-np-0", "np", "eastus-1")


def test_node_agent_without_a_node_watch_still_knows_its_node_ip_from_pods() -> None:
    # The node agent watches pods only: status.hostIP tells it which IP is the node's.
    nodes, pods = NodeIndex(), PodIndex()
    identity = KubeIdentity(nodes, pods)
    # A pod whose status still shows the node IP as its own (host network) must not be attributed.
    weird = pod_object("x", "hostish", "10.0.0.4", node="n1", host_ip="10.0.0.4")
    pods.apply("ADDED", weird)
    assert identity.pod_by_ip("10.0.0.4") is None
    pods.apply("DELETED", weird)
    assert not pods.is_host("10.0.0.4")


def test_node_ips_pool_fallback_and_ip_change() -> None:
    nodes = NodeIndex()
    nodes.apply("ADDED", node_object("n1", ["10.0.0.4", "fd00::4"], pool="sys", zone="eastus-2"))
    nodes.apply("ADDED", node_object("n2", "10.0.0.5", pool="user", pool_label="agentpool"))
    assert nodes.get("fd00::4") == NodeInfo("n1", "sys", "eastus-2")
    assert nodes.get("10.0.0.5") == NodeInfo("n2", "user", "")
    nodes.apply("MODIFIED", node_object("n2", "10.0.0.6", pool="user", pool_label="agentpool"))
    assert nodes.get("10.0.0.5") is None
    assert must(nodes.get("10.0.0.6")).name == "n2"
    assert sorted(ip for ip, _ in nodes.items()) == ["10.0.0.4", "10.0.0.6", "fd00::4"]


def test_relist_replaces_everything_at_once() -> None:
    pods = PodIndex()
    pods.apply("ADDED", pod_object("a", "gone", "10.1.0.1", host_ip="10.0.0.4"))
    pods.replace([pod_object("a", "kept", "10.1.0.2", host_ip="10.0.0.5")])
    assert pods.get("10.1.0.1") is None
    assert must(pods.get("10.1.0.2")).name == "kept"
    assert not pods.is_host("10.0.0.4") and pods.is_host("10.0.0.5")
    assert len(pods) == 1


# A random stream of events over few names and few IPs, to hit every reuse and reorder case.
_events = st.lists(
    st.tuples(
        st.sampled_from(["ADDED", "MODIFIED", "DELETED"]),
        st.sampled_from(["p1", "p2", "p3", "p4"]),
        st.sampled_from(["10.1.0.1", "10.1.0.2", "10.1.0.3", None]),
        st.sampled_from(["Running", "Running", "Succeeded"]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_events)
def test_index_never_names_a_pod_that_does_not_hold_the_ip(events: list[tuple[str, str, str | None, str]]) -> None:
    pods = PodIndex()
    live: dict[str, tuple[str | None, str]] = {}
    for kind, name, ip, phase in events:
        obj = pod_object("ns", name, ip, phase=phase)
        pods.apply(kind, obj)
        if kind == "DELETED":
            live.pop(name, None)
        else:
            live[name] = (ip, phase)
    claims: dict[str, list[str]] = {}
    for name, (ip, phase) in live.items():
        if ip is not None and phase == "Running":
            claims.setdefault(ip, []).append(name)
    for ip in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):
        info = pods.get(ip)
        holders = claims.get(ip, [])
        # Never a stale name; and an IP held by exactly one pod always names it.
        if info is not None:
            assert info.name in holders
        if len(holders) == 1:
            assert info is not None and info.name == holders[0]
    assert len(pods) == len(live)


def test_after_a_relist_a_reused_ip_names_the_live_pod_not_the_terminating_one() -> None:
    """Issue 15: a relist applies pods in name order, so a terminating web-zzz (listed after the new api-aaa that
    got its IP) answered for the IP until its DELETED event. Live pods win, then the newer one."""
    terminating = pod_object("shop", "web-zzz", "10.1.0.3")
    terminating["metadata"]["creationTimestamp"] = "2026-11-22T09:00:00Z"
    terminating["metadata"]["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    new = pod_object("shop", "api-aaa", "10.1.0.3")
    new["metadata"]["creationTimestamp"] = "2026-11-22T10:00:05Z"
    for order in ([new, terminating], [terminating, new]):
        pods = PodIndex()
        pods.replace(order)
        assert must(pods.get("10.1.0.3")).name == "api-aaa"
        pods.apply("MODIFIED", terminating)  # its status updates while it shuts down change nothing
        assert must(pods.get("10.1.0.3")).name == "api-aaa"
        pods.apply("DELETED", new)  # if the new pod goes first, the one still holding the IP answers
        assert must(pods.get("10.1.0.3")).name == "web-zzz"
    # Two live claimants (the old one's deletion not yet seen): the newer pod, in either order.
    old = pod_object("shop", "zz-old", "10.1.0.4")
    old["metadata"]["creationTimestamp"] = "2026-11-22T09:00:00Z"
    newer = pod_object("shop", "aa-new", "10.1.0.4")
    newer["metadata"]["creationTimestamp"] = "2026-11-22T10:00:00Z"
    for order in ([newer, old], [old, newer]):
        pods = PodIndex()
        pods.replace(order)
        assert must(pods.get("10.1.0.4")).name == "aa-new"


def test_a_pod_that_starts_terminating_hands_its_ip_to_the_live_claimant() -> None:
    pods = PodIndex()
    new = pod_object("b", "new", "10.1.0.3")
    old = pod_object("a", "old", "10.1.0.3")
    pods.apply("ADDED", new)
    pods.apply("ADDED", old)  # a late event of the old pod: the newest claim answers for now
    assert must(pods.get("10.1.0.3")).name == "old"
    old["metadata"]["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    pods.apply("MODIFIED", old)
    assert must(pods.get("10.1.0.3")).name == "new"
