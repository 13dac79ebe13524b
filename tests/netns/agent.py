"""Run inside a lab namespace: one real collection with an Identity stub (``--identity '{"ip": [ns, pod,
workload]}'``), printed as JSON by the collector's own entry point."""

from __future__ import annotations

import argparse
import json

from snat_exporter.collectors.conntrack.__main__ import main
from snat_exporter.identity import NodeInfo, PodInfo


class StubIdentity:
    """Pods by IP, as the Kubernetes collector would know them."""

    def __init__(self, pods: dict[str, list[str]]) -> None:
        self.pods = {ip: PodInfo(namespace=v[0], name=v[1], workload=v[2]) for ip, v in pods.items()}

    def node_by_ip(self, ip: str) -> NodeInfo | None:
        return None

    def node_by_name(self, name: str) -> NodeInfo | None:

        return None

    def cilium_config(self) -> dict[str, str] | None:
        return None

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return self.pods.get(ip)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--identity", default="{}")
    args, rest = parser.parse_known_args()
    raise SystemExit(main(rest, identity=StubIdentity(json.loads(args.identity))))
