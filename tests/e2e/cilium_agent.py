"""A node agent of an eBPF host routing node for the end-to-end stack: Cilium's SNAT map layout created, pinned
and filled through bpf(2) in a bpffs the test mounts (as Cilium's datapath fills it: an egress and a reverse entry
per flow), read by ``snat-exporter serve`` with ``conntrack.source=cilium``. It runs beside the conntrack agent
(tests/e2e/node_agent.py), in the same lab namespace and with its certificate, so that Prometheus scrapes both
in the one node job. The entries are written
by the test, not by Cilium."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.collectors.conntrack.bpfmaps import TCP, UDP, SnatMap, bpffs
from tests.e2e.node_agent import AGENT_PORT, NodeAgent
from tests.e2e.stack import wait_for
from tests.netns.lab import PYTHON

NODE_IP = "10.224.0.9"
DESTINATION = ("20.50.1.2", 443)
TCP_FLOWS = 120
UDP_FLOWS = 12


@dataclass
class CiliumAgent:
    url: str
    log: Path
    snat: SnatMap | None = None
    mount: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def instance(self) -> str:
        return self.url.removeprefix("https://")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def stop(self) -> None:
        # The process is the lab's (stopped with the conntrack agent's lab); the map and the mount are ours.
        if self.snat is not None:
            self.snat.close()
        self.mount.close()


def _fill(m: SnatMap) -> None:
    nat = iter(range(32768, 65536))
    for i in range(TCP_FLOWS):
        m.flow(f"10.244.9.{i % 4 + 10}", 40000 + i, *DESTINATION, TCP, NODE_IP, next(nat))
    for i in range(UDP_FLOWS):
        m.flow("10.244.9.10", 50000 + i, "20.50.1.3", 53, UDP, NODE_IP, next(nat))
    m.flow(NODE_IP, 45000, *DESTINATION, TCP, NODE_IP, 45000)  # the node's own flow, port kept


async def start_cilium_agent(tmp: Path, session: aiohttp.ClientSession, node: str, beside: NodeAgent) -> CiliumAgent:
    """The map, then the agent named ``node``, ready: its /metrics shows Cilium's tuple series."""
    lab = beside.lab
    agent = CiliumAgent(f"https://{lab.uplink_node_ip}:{AGENT_PORT + 1}", tmp / "cilium-agent.log")
    try:
        root = agent.mount.enter_context(bpffs())
        agent.snat = SnatMap(root)
        await asyncio.to_thread(_fill, agent.snat)
        settings = {
            "conntrack.enabled": "true",
            "conntrack.interval": "1s",
            "conntrack.source": "cilium",
            "conntrack.bpffs": str(root),
            "conntrack.node_name": node,
            # The same certificate, so that the node job's tls_config holds; no token review of its own, so that
            # the conntrack agent's count of reviews stays its own (the token Prometheus sends is not checked).
            "auth": "none",
            "web_config_file": str(beside.web_config),
        }
        argv = [PYTHON, "-m", "snat_exporter", "serve", "--listen", agent.instance]
        for key, value in settings.items():
            argv += ["--set", f"{key}={value}"]
        proc = lab.daemon(lab.node, argv, agent.log, env={"NODE_NAME": node})

        async def ready() -> Any:
            assert proc.poll() is None, f"the Cilium node agent exited ({proc.returncode}):\n{agent.tail()}"
            try:
                async with session.get(agent.url + "/metrics", headers=beside.headers, ssl=beside.client_ssl) as resp:
                    return "snat_cilium_nat_tuple_flows_max{" in await resp.text()
            except aiohttp.ClientError:
                return False

        await wait_for("the Cilium node agent to serve the map's flows", ready, 30)
    except BaseException:
        await agent.stop()
        raise
    return agent
