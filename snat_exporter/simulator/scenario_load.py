"""Loading a scenario: a built-in name, a YAML file or a mapping -> a Scenario, every derived value (node names,
IPs, resource IDs) deterministic. The file's sections are declared in ``scenario_input``; each is turned into the
model by one function per part of the estate: the cluster and nodes in ``scenario_cluster``, load balancers and NAT
gateways in ``scenario_network``, events and faults here, which also puts the whole together."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml

from snat_exporter.simulator.faults import Fault
from snat_exporter.simulator.scenario import (
    Event,
    LoadBalancer,
    LoadBalancerUsage,
    NatGateway,
    NatGatewayUsage,
    Node,
    Scenario,
    ScenarioError,
    stable_guid,
)
from snat_exporter.simulator.scenario_cluster import build_cluster, build_nodes
from snat_exporter.simulator.scenario_input import (
    EventInput,
    RateLimitInput,
    TopInput,
    UsageInput,
    read,
    where,
)
from snat_exporter.simulator.scenario_network import Estate, check_outbound, load_balancers, nat_gateways, usage_over

# The largest level a node's event may reach: a used/allocated ratio, 10x over-subscribed at most.
MAX_NODE_LEVEL = 10.0

# ----------------------------------------------------------------------------------------------- the parts


def _events(top: TopInput, nodes: list[Node], lbs: list[LoadBalancer], nats: list[NatGateway]) -> list[Event]:
    events: list[Event] = []
    for i, raw in enumerate(top.events):
        path = f"events[{i}]"
        if isinstance(raw, Mapping) and "from" in raw:  # `from` is a Python keyword: the field is from_level
            raw = {("from_level" if k == "from" else k): v for k, v in raw.items()}
        try:
            s = read(EventInput, raw, path)
        except ScenarioError as err:
            raise ScenarioError(err.path.replace(".from_level", ".from"), err.message) from None
        if (s.node is None) == (s.nat_gateway is None):
            raise ScenarioError(path, "give exactly one of `node` (index, name or IP) or `nat_gateway` (name)")
        if s.node is not None:
            target = _resolve_node(s.node, nodes, lbs, where(path, "node"))
            for key, level in (("to", s.to), ("from", s.from_level)):
                if level is not None and level > MAX_NODE_LEVEL:
                    raise ScenarioError(where(path, key), f"must be at most {MAX_NODE_LEVEL}, got {level}")
        else:
            matching = [n.name for n in nats if n.name.lower() == str(s.nat_gateway).lower()]
            if not matching:
                raise ScenarioError(where(path, "nat_gateway"), f"no NAT gateway named {s.nat_gateway!r}")
            target = matching[0]
        when = (s.start_minute, s.end_minute)
        events.append(Event(s.kind, target, *when, s.to, s.from_level, s.until_minute, s.failed_per_minute))
    return events


def _resolve_node(ref: Any, nodes: list[Node], lbs: list[LoadBalancer], path: str) -> str:
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not 0 <= ref < len(nodes):
            raise ScenarioError(path, f"node index {ref} out of range (0..{len(nodes) - 1})")
        return nodes[ref].ip
    ref_text = str(ref)
    for node in nodes:
        if ref_text in (node.name, node.ip):
            return node.ip
    if any(ref_text in lb.backends for lb in lbs):
        return ref_text
    raise ScenarioError(path, f"no node or backend {ref_text!r}")


def _faults(top: TopInput) -> list[Fault]:
    faults: list[Fault] = []
    for i, raw in enumerate(top.faults):
        if isinstance(raw, Mapping) and "hits" in raw:  # a counter of the running fault, not a setting
            raise ScenarioError(f"faults[{i}].hits", "unknown key")
        faults.append(read(Fault, raw, f"faults[{i}]"))
    return faults


# ------------------------------------------------------------------------------------------------ the whole


def parse_scenario(data: Any, name: str = "custom") -> Scenario:
    """Build a Scenario from parsed YAML (a mapping); raises ScenarioError naming the bad field."""
    top = read(TopInput, data, "")
    sub = top.subscription_id
    rl = read(RateLimitInput, top.ratelimit, "ratelimit")
    usage = read(UsageInput, top.usage, "usage")
    lb_usage = usage_over(LoadBalancerUsage, LoadBalancerUsage(), usage.load_balancer, "usage.load_balancer")
    nat_usage = usage_over(NatGatewayUsage, NatGatewayUsage(), usage.nat_gateway, "usage.nat_gateway")
    cluster, c, subnet_id = build_cluster(top)
    nodes = build_nodes(top, cluster, c)
    estate = Estate(sub)
    lbs = load_balancers(top, cluster, nodes, lb_usage, estate)
    nats = nat_gateways(top, cluster, subnet_id, nat_usage, estate)
    check_outbound(cluster, lbs, nats)
    events = _events(top, nodes, lbs, nats)
    faults = _faults(top)
    subnets: dict[str, str | None] = {subnet_id: None}
    for nat in nats:
        for sid in nat.subnets:
            subnets[sid] = nat.id
    return Scenario(
        name=name,
        description=top.description,
        subscription_id=sub,
        tenant_id=top.tenant_id or stable_guid("tenant", sub),
        region=top.region,
        lag_minutes=top.lag_minutes,
        revise_minutes=top.revise_minutes,
        revise_fraction=top.revise_fraction,
        ratelimit_reads=rl.reads,
        ratelimit_refill_per_second=rl.refill_per_second,
        batch_series_limit=top.batch_series_limit,
        cluster=cluster,
        nodes=tuple(nodes),
        load_balancers=tuple(lbs),
        nat_gateways=tuple(nats),
        public_ips=tuple(estate.public_ips),
        public_ip_prefixes=tuple(estate.prefixes),
        subnets=subnets,
        events=tuple(events),
        faults=tuple(faults),
    )


def builtin_scenarios() -> list[str]:
    folder = importlib_resources.files("snat_exporter.simulator") / "scenarios"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(source: str | Path | Mapping[str, Any]) -> Scenario:
    """A built-in scenario by name (``steady``, ``exhaustion``, ``natgw``), a YAML file path, or a parsed mapping."""
    if isinstance(source, Mapping):
        return parse_scenario(source)
    text_source = str(source)
    if isinstance(source, str) and re.fullmatch(r"[a-z0-9-]+", source):
        folder = importlib_resources.files("snat_exporter.simulator") / "scenarios"
        candidate = folder / f"{source}.yaml"
        if candidate.is_file():
            return _parse_text(candidate.read_text(encoding="utf-8"), source, f"built-in scenario {source}")
        if not Path(source).exists():
            raise ScenarioError("", f"no built-in scenario {source!r} (built-ins: {', '.join(builtin_scenarios())})")
    path = Path(text_source)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError("", f"cannot read scenario file {path}: {err.strerror or err}") from None
    return _parse_text(content, path.stem, str(path))


def _parse_text(content: str, name: str, origin: str) -> Scenario:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as err:
        raise ScenarioError("", f"{origin}: not valid YAML: {err}") from None
    return parse_scenario(data, name)
