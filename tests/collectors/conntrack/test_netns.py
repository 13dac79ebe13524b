"""The conntrack collector on the real kernel: a pod namespace SNATed by a node namespace (64-port budget) towards
an "internet" namespace. The collector runs in the node namespace (``ip netns exec``), as a DaemonSet would.

One scenario is built once for the module (about 2 s) and every test reads it:
- pod cart-1 (10.244.0.10) opens 72 TCP connections to 192.0.2.100:443: 64 fit the budget, 8 hang in SYN-SENT;
- pod web-1 (10.244.0.11) opens 10 to 192.0.2.101:443 and sends UDP from 8 sockets to 192.0.2.100:5353/5354;
- the node itself opens 3 to 192.0.2.100:8443 (not SNATed by the node, still outbound);
- pod cart-1 sends 2 datagrams to the node (10.244.0.1:53): tracked, but not outbound.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.netns.lab import INET_IPS, NODE_IP, NODE_POD_IP, POD_IPS, PORT_HI, PORT_LO, Lab, require_root

pytestmark = pytest.mark.netns

BUDGET = PORT_HI - PORT_LO + 1
IDENTITY = {POD_IPS[0]: ["shop", "cart-1", "cart"], POD_IPS[1]: ["shop", "web-1", "web"]}


def series(result: dict[str, Any], name: str, drop: tuple[str, ...] = ("node",)) -> dict[tuple, float]:
    out = {}
    for s in result["samples"]:
        if s["name"] == name:
            out[tuple(sorted((k, v) for k, v in s["labels"].items() if k not in drop))] = s["value"]
    return out


def value(result: dict[str, Any], name: str, **labels: str) -> float:
    found = series(result, name)
    key = tuple(sorted(labels.items()))
    assert key in found, f"{name}{labels} missing; have {sorted(found)}"
    return found[key]


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, Any]]:
    require_root()
    with Lab() as lab:
        before = lab.stats()
        lab.serve(f"{INET_IPS[0]}:443", f"{INET_IPS[1]}:443", f"{INET_IPS[0]}:8443")
        pods, _ = lab.clients(
            lab.pod,
            [
                {
                    "proto": "tcp",
                    "src": POD_IPS[0],
                    "dst": INET_IPS[0],
                    "port": 443,
                    "count": BUDGET + 8,
                    "expect": BUDGET,
                },
                {"proto": "tcp", "src": POD_IPS[1], "dst": INET_IPS[1], "port": 443, "count": 10},
                {"proto": "udp", "src": POD_IPS[1], "dst": INET_IPS[0], "port": 5353, "count": 4},
                {"proto": "udp", "src": POD_IPS[1], "dst": INET_IPS[0], "port": 5354, "count": 4},
                {"proto": "udp", "src": POD_IPS[0], "dst": NODE_POD_IP, "port": 53, "count": 2},
            ],
        )
        host, _ = lab.clients(
            lab.node, [{"proto": "tcp", "src": NODE_IP, "dst": INET_IPS[0], "port": 8443, "count": 3}]
        )
        netlink = lab.collect(identity=IDENTITY)
        after = lab.stats()
        procfs = lab.collect("conntrack.source=procfs", identity=IDENTITY)
        unprivileged = lab.collect(user="65534")
        count = int(lab.ns_exec(lab.node, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"))
        yield {
            "pods": pods,
            "host": host,
            "netlink": netlink,
            "procfs": procfs,
            "unprivileged": unprivileged,
            "before": before,
            "after": after,
            "count": count,
            "lab": lab,
        }
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab.prefix not in listed, "lab namespaces were not deleted"


def test_the_scenario_happened_as_planned(lab) -> None:
    assert lab["pods"] == {"connected": BUDGET + 10, "pending": 8, "udp": 10}
    assert lab["host"]["connected"] == 3


def test_entries_and_limit_match_the_kernel(lab) -> None:
    r = lab["netlink"]
    # 64 + 10 TCP from pods, 3 from the node, 8 UDP out, 2 UDP to the node; the 8 hanging SYNs have no entry.
    assert value(r, "snat_conntrack_entries") == 87 == lab["count"]
    assert value(r, "snat_conntrack_entries_limit") == int(
        lab["lab"].ns_exec(lab["lab"].node, "cat", "/proc/sys/net/netfilter/nf_conntrack_max")
    )
    assert value(r, "snat_exporter_conntrack_source_info", table="netlink", counters="netlink") == 1
    assert value(r, "snat_exporter_conntrack_entries_read_total", source="netlink") == 87


def test_flows_per_destination_match_what_was_opened(lab) -> None:
    flows = series(lab["netlink"], "snat_destination_flows")
    assert flows == {
        (("destination", INET_IPS[0]), ("port", "443"), ("protocol", "tcp")): BUDGET,
        (("destination", INET_IPS[1]), ("port", "443"), ("protocol", "tcp")): 10,
        (("destination", INET_IPS[0]), ("port", "8443"), ("protocol", "tcp")): 3,
        # UDP: Azure's budget is per destination IP, so both ports are one destination.
        (("destination", INET_IPS[0]), ("port", ""), ("protocol", "udp")): 8,
    }


def test_exhausting_one_destination_moves_failures_and_max_hits_the_budget(lab) -> None:
    r, before, after = lab["netlink"], lab["before"], lab["after"]
    assert value(r, "snat_outbound_flows_max_per_destination", protocol="tcp") == BUDGET
    failed = value(r, "snat_conntrack_insert_failed_total")
    dropped = value(r, "snat_conntrack_drop_total")
    # Each dropped SYN (first tries and retransmissions) is one insert_failed and one drop.
    assert failed - before["insert_failed"] >= 8
    assert dropped - before["drop"] >= 8
    assert before["insert_failed"] <= failed <= after["insert_failed"]  # same counter as conntrack -S
    assert value(r, "snat_conntrack_early_drop_total") == 0
    # The other destination was not affected: all 10 connected and it is counted in full.
    assert value(r, "snat_destination_flows", destination=INET_IPS[1], port="443", protocol="tcp") == 10


def test_outbound_flows_by_state_and_snat(lab) -> None:
    assert series(lab["netlink"], "snat_outbound_flows") == {
        (("protocol", "tcp"), ("snat", "true"), ("tcp_state", "established")): BUDGET + 10,
        (("protocol", "tcp"), ("snat", "false"), ("tcp_state", "established")): 3,  # the node's own flows
        (("protocol", "udp"), ("snat", "true"), ("tcp_state", "")): 8,
    }


def test_flows_are_attributed_to_pods_and_the_host(lab) -> None:
    assert series(lab["netlink"], "snat_pod_outbound_flows") == {
        (("namespace", "shop"), ("pod", "cart-1"), ("workload", "cart")): BUDGET,
        (("namespace", "shop"), ("pod", "web-1"), ("workload", "web")): 18,
        (("namespace", ""), ("pod", "host"), ("workload", "")): 3,
    }


def test_procfs_fallback_agrees_with_netlink(lab) -> None:
    netlink, procfs = lab["netlink"], lab["procfs"]
    assert value(procfs, "snat_exporter_conntrack_source_info", table="procfs", counters="procfs") == 1
    for name in (
        "snat_conntrack_entries",
        "snat_outbound_flows",
        "snat_outbound_flows_max_per_destination",
        "snat_destination_flows",
        "snat_pod_outbound_flows",
    ):
        assert series(procfs, name) == series(netlink, name), name
    # Counters only grow (the hanging SYNs keep retrying): procfs, read later, is at least netlink's figure.
    for stat in ("insert_failed", "drop", "found"):
        assert value(procfs, f"snat_conntrack_{stat}_total") >= value(netlink, f"snat_conntrack_{stat}_total")


def test_without_cap_net_admin_it_says_why_and_serves_the_counts(lab) -> None:
    r = lab["unprivileged"]
    assert "CAP_NET_ADMIN" in r["stderr"]
    assert "permission denied" in r["stderr"]
    assert value(r, "snat_conntrack_entries") == 87  # /proc/sys needs no privilege
    assert value(r, "snat_exporter_conntrack_source_info", table="none", counters="procfs") == 1
    assert value(r, "snat_conntrack_insert_failed_total") >= 8  # /proc/net/stat is world-readable
    assert not series(r, "snat_destination_flows")
    assert not series(r, "snat_outbound_flows")
