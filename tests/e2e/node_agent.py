"""A node agent on the real kernel for the end-to-end stack.

The conntrack lab (tests/netns/lab.py) gives a pod namespace, a node namespace that masquerades the pods' traffic
to 1,024 source ports (the node's SNAT budget, as Azure's allocation in the `exhaustion` scenario) and an "internet"
namespace. Two pods open real flows: ``shop/cart`` floods one DNS resolver with UDP flows from distinct source
ports (enough to reach SnatDestinationPressureHigh's 80% of 1,024), ``shop/web`` holds TCP connections to a web
server. ``snat-exporter serve`` runs INSIDE the node namespace with the conntrack and Kubernetes (pods only)
collectors, as the DaemonSet does, named after the scenario's exhausted node so that PromQL joins it with the Azure
series by ``node``. A veth uplink (a /30 of 198.18.0.0/15) lets the Prometheus in the root namespace scrape it and
lets it reach its fake Kubernetes API server, which listens on the root side of that link.

The agent is locked as the manifests lock it: https with a certificate of a test CA, and ``auth: kubernetes``. The
Prometheus of the stack scrapes it with a service account token from a file and the CA in its tls_config; the fake
API server knows that token (TokenReview) and grants its user ``get`` on ``/metrics`` (SubjectAccessReview).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeauth import User
from snat_exporter.simulator.kubeobjects import pod_object, write_kubeconfig
from tests.e2e.stack import wait_for
from tests.netns.lab import INET_IPS, POD_IPS, PYTHON, Lab, require_root
from tests.web.certs import CA

AGENT_PORT = 9874
SNAT_PORTS = (20000, 21023)  # 1,024 ports, the node's allocation in the `exhaustion` scenario
CHUNK = 400  # sockets per client process: stays under a default RLIMIT_NOFILE of 1,024

# (namespace, pod, Deployment, pod-template-hash) of the two pods, by pod IP
PODS = {
    POD_IPS[0]: ("shop", "cart-6f9c7d8b5-x2k4q", "cart", "6f9c7d8b5"),
    POD_IPS[1]: ("shop", "web-5d8f7c9b4-7hd2m", "web", "5d8f7c9b4"),
}
BUSY_POD = PODS[POD_IPS[0]]
RESOLVER = (INET_IPS[1], 53)  # the destination the cart pod floods (UDP: one SNAT port per destination IP)
WEB = (INET_IPS[0], 443)
PROMETHEUS = User.service_account("monitoring", "prometheus")
PROMETHEUS_TOKEN = "e2e-prometheus-service-account-token"
UDP_FLOWS = 850  # >= 80% of 1,024: SnatDestinationPressureHigh
TCP_FLOWS = 30


@dataclass
class NodeAgent:
    lab: Lab
    api: KubeApiServer
    node: str
    url: str  # of the agent, as the root namespace reaches it
    log: Path
    ca_file: Path
    token_file: Path
    client_ssl: ssl.SSLContext = field(repr=False)
    web_config: Path | None = None  # for a second agent in the lab, with the same certificate

    @property
    def instance(self) -> str:
        return self.url.removeprefix("https://")

    @property
    def scrape(self) -> dict[str, Any]:
        """What Prometheus needs to scrape the agent: as the ServiceMonitor says, a token file and the CA."""
        return {
            "scheme": "https",
            "authorization": {"type": "Bearer", "credentials_file": str(self.token_file)},
            "tls_config": {"ca_file": str(self.ca_file)},
        }

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {PROMETHEUS_TOKEN}"}

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def stop(self) -> None:
        try:
            await self.api.stop()
        finally:
            await asyncio.to_thread(self.lab.close)


def _open_flows(lab: Lab) -> None:
    lab.serve(f"{WEB[0]}:{WEB[1]}")
    web = {"proto": "tcp", "src": POD_IPS[1], "dst": WEB[0], "port": WEB[1], "count": TCP_FLOWS}
    report, _ = lab.clients(lab.pod, [web])
    assert report["connected"] == TCP_FLOWS, report
    left = UDP_FLOWS
    while left:
        n = min(CHUNK, left)
        dns = {"proto": "udp", "src": POD_IPS[0], "dst": RESOLVER[0], "port": RESOLVER[1], "count": n}
        report, _ = lab.clients(lab.pod, [dns])
        assert report["udp"] == n, report
        left -= n


async def _sample(session: aiohttp.ClientSession, agent: NodeAgent, name: str, **labels: str) -> float | None:
    """The value of one series on the agent's /metrics, None while it is absent (or the agent not up yet)."""
    try:
        async with session.get(agent.url + "/metrics", headers=agent.headers, ssl=agent.client_ssl) as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            got = series[len(name) :].strip("{}")
            if all(part in got.split(",") for part in want.split(",") if part):
                return float(value)
    return None


async def start_node_agent(tmp: Path, session: aiohttp.ClientSession, node: str) -> NodeAgent:
    """The lab, its flows, the fake API server with the two pods on ``node``, and the agent in the node namespace,
    ready: its /metrics shows every planned flow attributed to its pod. Fails (never skips) without root."""
    require_root()
    lab = Lab(udp_timeout=600, port_range=SNAT_PORTS, uplink=True)  # UDP flows must outlive the test
    api = KubeApiServer()
    api.auth.add_token(PROMETHEUS_TOKEN, PROMETHEUS)
    api.auth.grant(PROMETHEUS.username)  # Prometheus's ClusterRole: nonResourceURLs ["/metrics"], verbs ["get"]
    ca = CA("e2e-ca")
    tls_dir = tmp / "agent-tls"
    tls_dir.mkdir()
    ca_file = ca.write(tls_dir / "ca.crt")
    ca.issue("snat-exporter-node-agent", ips=(lab.uplink_node_ip,)).write(tls_dir / "tls.crt", tls_dir / "tls.key")
    web_config = tls_dir / "web-config.yml"
    web_config.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    token_file = tls_dir / "prometheus-token"
    token_file.write_text(PROMETHEUS_TOKEN)
    client_ssl = ssl.create_default_context(cafile=str(ca_file))
    url = f"https://{lab.uplink_node_ip}:{AGENT_PORT}"
    agent = NodeAgent(lab, api, node, url, tmp / "node-agent.log", ca_file, token_file, client_ssl)
    try:
        await asyncio.to_thread(lab.__enter__)
        for ip, (namespace, name, deployment, template_hash) in PODS.items():
            owner = ("ReplicaSet", f"{deployment}-{template_hash}")
            labels = {"app": deployment, "pod-template-hash": template_hash}
            api.add(pod_object(namespace, name, ip, node=node, owner=owner, labels=labels))
        kube_url = await api.start(lab.uplink_root_ip, 0)
        directory = tmp / "kube-node-agent"
        directory.mkdir()
        kubeconfig = str(write_kubeconfig(directory / "kubeconfig", kube_url))
        agent.web_config = web_config
        await asyncio.to_thread(_open_flows, lab)
        settings = {
            "conntrack.enabled": "true",
            "conntrack.interval": "1s",
            "kubernetes.enabled": "true",
            "kubernetes.nodes": "false",
            "kubernetes.pods": "true",
            "kubernetes.kubeconfig": kubeconfig,
            "auth": "kubernetes",
            "web_config_file": str(web_config),
        }
        argv = [PYTHON, "-m", "snat_exporter", "serve", "--listen", f"{lab.uplink_node_ip}:{AGENT_PORT}"]
        for key, value in settings.items():
            argv += ["--set", f"{key}={value}"]
        proc = lab.daemon(lab.node, argv, agent.log, env={"NODE_NAME": node})

        async def ready() -> Any:
            assert proc.poll() is None, f"the node agent exited ({proc.returncode}):\n{agent.tail()}"
            _, name, workload, _ = BUSY_POD
            flows = await _sample(session, agent, "snat_pod_outbound_flows", pod=name, workload=workload)
            return flows is not None and flows >= UDP_FLOWS

        await wait_for("the node agent to attribute the flows to their pods", ready, 30)
    except BaseException:
        await agent.stop()
        raise
    return agent
