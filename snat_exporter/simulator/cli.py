"""``snat-exporter simulate`` and ``python -m snat_exporter.simulator``: the simulator alone, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from snat_exporter.simulator.scenario import Scenario, ScenarioError
from snat_exporter.simulator.scenario_load import builtin_scenarios, load_scenario
from snat_exporter.simulator.server import Simulator


def exporter_settings(scenario: Scenario, url: str) -> dict[str, str]:
    """The exporter settings (dotted paths, as `--set` takes them) that point it at this simulator, the way a
    real config points it at Azure: discovery from the scenario's cluster, no credential over loopback http."""
    return {
        "azure.enabled": "true",
        "azure.subscription_id": scenario.subscription_id,
        "azure.arm_endpoint": url,
        "azure.credential": "none",
        "azure.cluster.resource_group": scenario.cluster.resource_group,
        "azure.cluster.name": scenario.cluster.name,
    }


def config_snippet(scenario: Scenario, url: str) -> str:
    """The same settings as an exporter config file."""
    s = exporter_settings(scenario, url)
    return (
        "azure:\n"
        f"  enabled: {s['azure.enabled']}\n"
        f"  subscription_id: {s['azure.subscription_id']}\n"
        f"  arm_endpoint: {s['azure.arm_endpoint']}\n"
        f"  credential: {s['azure.credential']}\n"
        f"  cluster: {{resource_group: {s['azure.cluster.resource_group']}, name: {s['azure.cluster.name']}}}\n"
    )


async def _serve(scenario: Scenario, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    # Handlers first, so that a signal arriving during start-up is not lost.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    simulator = Simulator(scenario)
    try:
        url = await simulator.start(host, port)
        nodes = len(scenario.nodes)
        print(
            f"Azure simulator, scenario {scenario.name!r} ({scenario.cluster.outbound_type}, {nodes} nodes), "
            f"listening on {url}\n\nPoint the exporter at it with this config:\n\n{config_snippet(scenario, url)}",
            flush=True,
        )
        await stop
    finally:
        await simulator.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    return 0


def run_simulator(scenario: str, host: str, port: int) -> int:
    """Blocks until SIGTERM or SIGINT; 0 on a clean stop, 2 for a bad scenario or a port it cannot bind."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as err:
        print(f"scenario error: {err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(loaded, host, port))
    except OSError as err:  # the same line and exit code as serve and demo (snat_exporter.server.ListenError)
        reason = os.strerror(err.errno) if err.errno else str(err)
        print(f"error: cannot listen on {host}:{port}: {reason[:1].lower()}{reason[1:]}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m snat_exporter.simulator", description="Azure Monitor / Resource Manager simulator."
    )
    parser.add_argument("--scenario", default="steady", help="built-in scenario name or a scenario YAML path")
    parser.add_argument("--listen", default="127.0.0.1:9875", help="HOST:PORT (default 127.0.0.1:9875)")
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in builtin_scenarios():
            description = load_scenario(name).description.strip().splitlines()
            print(f"{name}: {description[0] if description else ''}")
        return 0
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        print(f"error: --listen expects HOST:PORT, got {args.listen!r}", file=sys.stderr)
        return 2
    return run_simulator(args.scenario, host.strip("[]") or "127.0.0.1", int(port))
