"""One collection of this network namespace's conntrack table, printed as JSON: ``python -m
snat_exporter.collectors.conntrack [--set conntrack.top_k=5 ...]``.

For an SRE on a node (``kubectl exec`` into the DaemonSet pod) and for the tests, which run it inside a lab
network namespace with ``ip netns exec``. Prints {"samples": [{"name", "labels", "value"}...], "seconds": n}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import CollectorRegistry

from snat_exporter.collectors.base import CollectorContext
from snat_exporter.collectors.conntrack.collector import ConntrackCollector
from snat_exporter.config import load_config
from snat_exporter.identity import Identity, NoIdentity
from snat_exporter.logs import setup_logging
from snat_exporter.snapshot import Snapshot


def samples(snapshot: Snapshot, registry: CollectorRegistry | None = None) -> list[dict[str, Any]]:
    out = []
    families = list(snapshot.families) + (list(registry.collect()) if registry is not None else [])
    for family in families:
        for s in family.samples:
            out.append({"name": s.name, "labels": dict(s.labels), "value": s.value})
    return out


async def collect_once(overrides: dict[str, str], identity: Identity) -> dict[str, Any]:
    config = load_config(None, overrides={"conntrack.enabled": "true", **overrides})
    registry = CollectorRegistry()
    collector = ConntrackCollector(config.conntrack, CollectorContext(registry=registry, identity=identity))
    await collector.start()
    started = time.monotonic()
    snapshot = await collector.collect()
    seconds = time.monotonic() - started
    await collector.close()
    return {"samples": samples(snapshot, registry), "seconds": seconds}


def main(argv: Sequence[str] | None = None, identity: Identity | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snat_exporter.collectors.conntrack", description=__doc__)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = parser.parse_args(argv)
    overrides = dict(item.partition("=")[::2] for item in args.set)
    setup_logging("info")  # start-up findings (what cannot be read, and why) go to stderr
    result = asyncio.run(collect_once(overrides, identity or NoIdentity()))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
