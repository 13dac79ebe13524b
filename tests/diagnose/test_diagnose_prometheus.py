"""`snat-exporter diagnose --prometheus` against the real Prometheus, holding an hour of series written with
`promtool tsdb create-blocks-from openmetrics` (the exact history, no scrape timing): two AKS clusters in one
Prometheus WITHOUT a `cluster` target label, one of them out of SNAT ports on one node, and node agents on both.

The end-to-end test (tests/e2e) covers the scraped case with `cluster` labels and a node agent on the real kernel.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import jsonschema
import pytest

from snat_exporter.cli import main
from snat_exporter.diagnose.report import SCHEMA_PATH
from tests.e2e.stack import Process, binary, free_port, wait_for

SHOP_SUB, PAY_SUB = "8d2e6f10-3c4b-4a7e-b1d2-6c0f5e9a4b22", "2b7a9c44-1e5d-4f3a-8b6c-9d0e1f2a3c33"
SHOP_RG = "MC_rg-shop_aks-shop_westeurope"  # as ARM spells it in the cluster; the LB's series are lower-cased
PAY_RG = "MC_rg-pay_aks-pay_westeurope"
EXHAUSTED = "aks-nodepool1-85638540-vmss000001"
HEALTHY = "aks-nodepool1-85638540-vmss000000"
PAY_NODE = "aks-nodepool1-33873639-vmss000000"
MINUTES = 50


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def history(now: float) -> str:
    """One sample a minute for the last MINUTES minutes, in OpenMetrics (families grouped, times ascending)."""
    times = [int(now) - 60 * (MINUTES - i) for i in range(MINUTES)]
    shop_lb = {"load_balancer": "kubernetes", "resource_group": SHOP_RG.lower(), "subscription_id": SHOP_SUB}
    pay_gw = {"nat_gateway": "aks-pay-natgw", "resource_group": PAY_RG.lower(), "subscription_id": PAY_SUB}
    job = {"job": "snat-exporter"}
    families: dict[str, tuple[str, list[tuple[dict[str, str], Any]]]] = {
        "azure_cluster_outbound_info": (
            "gauge",
            [
                (
                    {
                        **job,
                        "managed_cluster": "aks-shop",
                        "resource_group": "rg-shop",
                        "subscription_id": SHOP_SUB,
                        "node_resource_group": SHOP_RG,
                        "outbound_type": "loadBalancer",
                    },
                    1,
                ),
                (
                    {
                        **job,
                        "managed_cluster": "aks-pay",
                        "resource_group": "rg-pay",
                        "subscription_id": PAY_SUB,
                        "node_resource_group": PAY_RG,
                        "outbound_type": "managedNATGateway",
                    },
                    1,
                ),
            ],
        ),
        "azure_lb_frontend_ips": ("gauge", [({**job, **shop_lb}, 1)]),
        "azure_lb_outbound_rule_allocated_ports": ("gauge", [({**job, **shop_lb}, 1024)]),
        "azure_lb_snat_ports_allocated": (
            "gauge",
            [
                ({**job, **shop_lb, "frontend_ip": "20.0.0.1", "backend_ip": ip, "node": node, "protocol": p}, 1024)
                for ip, node in (("10.224.0.4", HEALTHY), ("10.224.0.5", EXHAUSTED))
                for p in ("tcp", "udp")
            ],
        ),
        "azure_lb_snat_ports_used": (
            "gauge",
            [
                ({**job, **shop_lb, "frontend_ip": "20.0.0.1", "backend_ip": "10.224.0.4", "node": HEALTHY}, 200),
                # climbs to the full allocation, then stays there
                (
                    {**job, **shop_lb, "frontend_ip": "20.0.0.1", "backend_ip": "10.224.0.5", "node": EXHAUSTED},
                    lambda i: min(1024, 400 + 20 * i),
                ),
            ],
        ),
        "azure_lb_snat_connections": (
            "counter",
            [
                (
                    {**job, **shop_lb, "frontend_ip": "20.0.0.1", "backend_ip": ip, "node": node, "state": "failed"},
                    rate,
                )
                for ip, node, rate in (
                    ("10.224.0.4", HEALTHY, lambda i: 0),
                    ("10.224.0.5", EXHAUSTED, lambda i: 40 * max(0, i - 30)),
                )
            ],
        ),
        "azure_natgw_public_ips": ("gauge", [({**job, **pay_gw}, 2)]),
        "azure_natgw_active_connections": ("gauge", [({**job, **pay_gw, "protocol": "tcp"}, 9000)]),
        "azure_natgw_snat_connections": ("counter", [({**job, **pay_gw, "protocol": "tcp", "state": "failed"}, 0)]),
        "azure_natgw_dropped_packets": ("counter", [({**job, **pay_gw}, 0)]),
        # node agents: one on each cluster, neither with a cluster label
        "snat_outbound_flows_max_per_destination": (
            "gauge",
            [
                ({"job": "snat-exporter-node", "node": EXHAUSTED, "protocol": "tcp"}, 980),
                ({"job": "snat-exporter-node", "node": PAY_NODE, "protocol": "tcp"}, 5000),
            ],
        ),
        "snat_destination_flows": (
            "gauge",
            [
                (
                    {
                        "job": "snat-exporter-node",
                        "node": EXHAUSTED,
                        "destination": "203.0.113.10",
                        "port": "443",
                        "protocol": "tcp",
                    },
                    980,
                ),
                (
                    {
                        "job": "snat-exporter-node",
                        "node": PAY_NODE,
                        "destination": "198.51.100.7",
                        "port": "443",
                        "protocol": "tcp",
                    },
                    5000,
                ),
            ],
        ),
        "snat_pod_outbound_flows": (
            "gauge",
            [
                (
                    {
                        "job": "snat-exporter-node",
                        "node": EXHAUSTED,
                        "namespace": "shop",
                        "pod": "checkout-6d8f9c7b5-x2k4q",
                        "workload": "checkout",
                    },
                    990,
                ),
                (
                    {"job": "snat-exporter-node", "node": PAY_NODE, "namespace": "pay", "pod": "ledger-0"},
                    5000,
                ),
            ],
        ),
    }
    lines = []
    for name, (kind, series) in families.items():
        lines.append(f"# TYPE {name} {kind}")
        suffix = "_total" if kind == "counter" else ""
        for labels, value in series:
            for i, t in enumerate(times):
                v = value(i) if callable(value) else value
                lines.append(f"{name}{suffix}{_labels(**labels)} {v} {t}")
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "history.om").write_text(history(time.time()))
    done = subprocess.run(
        [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(tmp / "history.om"), str(tmp / "db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = Process(
        "prometheus",
        [
            binary("prometheus"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'db'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp / "prometheus.log",
    )

    async def start() -> None:
        await process.start()
        async with aiohttp.ClientSession() as session:

            async def loaded() -> bool:
                assert process.proc is not None and process.proc.returncode is None, process.tail()
                try:
                    async with session.get(url + "/api/v1/query", params={"query": "azure_lb_frontend_ips"}) as r:
                        return r.status == 200 and bool((await r.json())["data"]["result"])
                except aiohttp.ClientError:
                    return False

            await wait_for("Prometheus to serve the backfilled history", loaded, 30)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(start())
        yield url
    finally:
        loop.run_until_complete(process.stop())
        loop.close()


async def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def validated(out: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(out)
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    return report


async def test_two_clusters_without_a_cluster_label_ask_which_one(prometheus: str, capsys) -> None:
    code, out, err = await run_cli(["diagnose", "--prometheus", prometheus], capsys)
    assert code == 2 and out == ""
    assert "holds 2 AKS clusters (aks-pay, aks-shop): choose one with --cluster NAME" in err

    code, out, err = await run_cli(["diagnose", "--prometheus", prometheus, "--cluster", "aks-nope"], capsys)
    assert code == 2 and "has no cluster 'aks-nope'" in err and "aks-pay, aks-shop" in err


async def test_the_exhausted_node_with_its_pod_and_destination(prometheus: str, capsys) -> None:
    args = ["diagnose", "--prometheus", prometheus, "--cluster", "aks-shop", "--output", "json"]
    code, out, err = await run_cli(args, capsys)
    report = validated(out)
    assert code == 1 and report["exit_code"] == 1, err
    assert report["cluster"] == "aks-shop" and report["outbound"]["type"] == "loadBalancer"
    assert report["outbound"]["load_balancers"] == [
        {"name": "kubernetes", "resource_group": SHOP_RG.lower(), "frontend_ips": 1, "allocated_outbound_ports": 1024}
    ]
    assert report["outbound"]["nat_gateways"] == []  # the other cluster's gateway stays out
    # The other cluster's node agent is not a node of this one.
    assert sorted(n["node"] for n in report["nodes"]) == [HEALTHY, EXHAUSTED]
    node = next(n for n in report["nodes"] if n["node"] == EXHAUSTED)
    assert node["allocated_ports"] == 1024 and node["used_now"] == 1024 and node["used_peak"] == 1024
    assert node["failed_connections"] > 0
    assert node["max_flows_per_destination"] == 980
    assert node["top_destinations"] == [{"destination": "203.0.113.10", "port": "443", "protocol": "tcp", "flows": 980}]
    assert node["top_pods"][0]["pod"] == "checkout-6d8f9c7b5-x2k4q"
    top = report["findings"][0]
    assert top["severity"] == "critical" and top["node"] == EXHAUSTED
    assert "shop/checkout-6d8f9c7b5-x2k4q (990 flows)" in top["detail"] and "203.0.113.10:443/tcp" in top["detail"]
    assert "--load-balancer-outbound-ports" in top["remedy"]
    assert not [f for f in report["findings"] if f["node"] == HEALTHY and f["severity"] != "info"]
    assert any("`cluster` label" in note for note in report["notes"])


async def test_the_nat_gateway_cluster(prometheus: str, capsys) -> None:
    args = ["diagnose", "--prometheus", prometheus, "--cluster", "aks-pay", "--output", "json"]
    code, out, err = await run_cli(args, capsys)
    report = validated(out)
    assert report["outbound"]["type"] == "managedNATGateway" and report["outbound"]["load_balancers"] == []
    (gw,) = report["outbound"]["nat_gateways"]
    assert gw["name"] == "aks-pay-natgw" and gw["public_ips"] == 2 and gw["active_connections_peak"] == 9000
    assert report["capacity"]["natgw_total_ports"] == 129_024
    assert report["nodes"] == []  # neither cluster's agents can be told apart without the label
    assert code == 0 and [f["title"] for f in report["findings"]] == ["No SNAT pressure found"], err


def test_cluster_needs_prometheus(capsys) -> None:
    assert main(["diagnose", "--cluster", "aks-shop"]) == 2
    assert "--cluster" in capsys.readouterr().err
