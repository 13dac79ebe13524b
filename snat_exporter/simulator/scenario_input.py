"""The scenario file's sections, declared like the exporter's config (``snat_exporter.settings``) and read by the
same machinery: each key's default and parser in one declaration, unknown keys and bad values named by their
dotted path (``load_balancers[0].frontend_ips``), cross-field checks in ``validate()``.

Differences from the exporter's config, which ``read()`` adds: a key set to null means "not set", a key may be
required, and the first problem raises (a scenario is a test fixture: one error at a time is enough).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

from snat_exporter.settings import build_section, parse_int, parse_number, setting
from snat_exporter.simulator.scenario import OUTBOUND_TYPES, ScenarioError

T = TypeVar("T")


def where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def read(cls: type[T], raw: Any, path: str) -> T:
    """``cls`` built from one mapping of the scenario; raises ScenarioError naming the first bad field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ScenarioError(path, f"expected a mapping, got {type(raw).__name__}")
    given = {k: v for k, v in raw.items() if v is not None}
    problems: list[tuple[str, str]] = []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING and f.name not in given:
            raise ScenarioError(where(path, f.name), "required")
    try:
        obj = build_section(cls, given, path, problems)
    except ValueError as err:  # a section that checks itself when built (Fault): "field: message"
        key, _, message = str(err).partition(": ")
        raise ScenarioError(where(path, key), message) from None
    except TypeError:  # a required value that did not parse: its problem is the one to report
        if not problems:
            raise
    if problems:
        raise ScenarioError(*problems[0])
    return obj


# -------------------------------------------------------------------------------------------------- parsers


def text(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return str(value).strip()


def azure_name(value: Any) -> str:
    out = text(value)
    if not re.fullmatch(r"[A-Za-z0-9_.(){}-]+", out):
        raise ValueError(f"expected an Azure resource name (letters, digits, - _ . ( )), got {out!r}")
    return out


def guid(value: Any) -> str:
    try:
        return str(uuid.UUID(text(value)))
    except ValueError:
        raise ValueError(f"expected a GUID like 00000000-0000-0000-0000-000000000000, got {value!r}") from None


def ipv4(value: Any) -> str:
    return str(ipaddress.IPv4Address(text(value)))


def network(value: Any) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text(value))


def choice(*choices: str) -> Any:
    """One of ``choices``, matched case-insensitively, returned in its declared casing (as Azure does)."""

    def parse(value: Any) -> str:
        given = text(value)
        for c in choices:
            if given.lower() == c.lower():
                return c
        raise ValueError(f"expected one of {', '.join(choices)}, got {given!r}")

    return parse


def items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def zone_list(value: Any) -> tuple[str, ...]:
    return tuple(text(z) for z in items(value))


def prefix_lengths(value: Any) -> tuple[int, ...]:
    return tuple(parse_int(28, 31)(x) for x in items(value))


def mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class TopInput:
    subscription_id: str = setting(MISSING, "The subscription every resource lives in.", parse=guid)
    cluster: Mapping[str, Any] = setting(MISSING, "The AKS cluster (see ClusterInput).", parse=mapping)
    description: str = setting("", "Shown by `simulate --list`.", parse=text)
    tenant_id: str | None = setting(None, "Default: derived from the subscription.", parse=guid)
    region: str = setting("westeurope", "Every resource's location.", parse=azure_name)
    lag_minutes: int = setting(3, "Minutes before a minute's value is published.", parse=parse_int(0, 60))
    revise_minutes: int = setting(0, "Published minutes that are still revised upward.", parse=parse_int(0, 60))
    revise_fraction: float = setting(0.5, "Share of a revised minute first published.", parse=parse_number(0, 1))
    batch_series_limit: int = setting(500_000, "Series one getBatch call may return.", parse=parse_int(1))
    ratelimit: Mapping[str, Any] | None = setting(None, "ARM's read bucket (see RateLimitInput).", parse=mapping)
    usage: Mapping[str, Any] | None = setting(None, "Default usage curves (see UsageInput).", parse=mapping)
    nodes: list[Any] | None = setting(None, "Explicit nodes; default: AKS-like ones from the pools.", parse=items)
    load_balancers: list[Any] = setting(default_factory=list, doc="See LoadBalancerInput.", parse=items)
    nat_gateways: list[Any] = setting(default_factory=list, doc="See NatGatewayInput.", parse=items)
    events: list[Any] = setting(default_factory=list, doc="See EventInput.", parse=items)
    faults: list[Any] = setting(default_factory=list, doc="See simulator.faults.Fault.", parse=items)


@dataclass(frozen=True)
class RateLimitInput:
    reads: int = setting(250, "ARM subscription read bucket; 0 turns throttling off.", parse=parse_int(0))
    refill_per_second: float = setting(25.0, "Tokens added per second.", parse=parse_number(0))


@dataclass(frozen=True)
class UsageInput:
    load_balancer: Mapping[str, Any] | None = setting(None, "See LoadBalancerUsage.", parse=mapping)
    nat_gateway: Mapping[str, Any] | None = setting(None, "See NatGatewayUsage.", parse=mapping)


@dataclass(frozen=True)
class ClusterInput:
    resource_group: str = setting(MISSING, "The cluster's resource group.", parse=azure_name)
    name: str = setting(MISSING, "The managed cluster's name.", parse=azure_name)
    node_resource_group: str | None = setting(None, "Default: MC_<rg>_<name>_<region>.", parse=azure_name)
    outbound_type: str = setting("loadBalancer", "AKS outboundType.", parse=choice(*OUTBOUND_TYPES))
    kubernetes_version: str = setting("1.31.2", "", parse=text)
    network_plugin: str = setting("azure", "", parse=choice("azure", "kubenet", "none"))
    node_subnet: ipaddress.IPv4Network = setting(
        default_factory=lambda: ipaddress.IPv4Network("10.224.0.0/16"), doc="Node addresses.", parse=network
    )
    byo_vnet: bool | None = setting(None, "Default: true for userAssignedNATGateway.", parse=bool)
    agent_pools: list[Any] = setting(
        default_factory=lambda: [{"name": "nodepool1", "count": 3}], doc="See AgentPoolInput.", parse=items
    )


@dataclass(frozen=True)
class AgentPoolInput:
    name: str = setting(MISSING, "", parse=azure_name)
    count: int = setting(MISSING, "Nodes in the pool.", parse=parse_int(0, 5000))
    vm_size: str = setting("Standard_D4ds_v5", "", parse=text)
    zones: tuple[str, ...] = setting(("1", "2", "3"), "", parse=zone_list)
    max_surge: str = setting("10%", "", parse=text)
    mode: str | None = setting(None, "Default: System for the first pool, User after.", parse=choice("System", "User"))


@dataclass(frozen=True)
class NodeInput:
    name: str = setting(MISSING, "", parse=text)
    ip: str = setting(MISSING, "Its InternalIP (the load balancer's BackendIPAddress).", parse=ipv4)
    pool: str | None = setting(None, "Default: the first pool.", parse=text)
    zone: str = setting("0", "", parse=text)


@dataclass(frozen=True)
class LoadBalancerInput:
    name: str = setting("kubernetes", "With count > 1, {i} is replaced by 0, 1, ...", parse=azure_name)
    count: int = setting(1, "How many alike.", parse=parse_int(1, 100_000))
    resource_group: str | None = setting(None, "Default: the node resource group.", parse=azure_name)
    frontend_ips: int = setting(1, "", parse=parse_int(1, 100))
    allocated_outbound_ports: int = setting(0, "0: Azure's default table.", parse=parse_int(0, 64000))
    idle_timeout_minutes: int = setting(30, "", parse=parse_int(4, 120))
    backends: Any = setting(None, "`nodes` (default) or a number of synthetic backends.", parse=lambda v: v)
    usage: Mapping[str, Any] | None = setting(None, "Overrides usage.load_balancer.", parse=mapping)

    def validate(self) -> list[tuple[str, str]]:
        ports = self.allocated_outbound_ports
        return [("allocated_outbound_ports", f"must be a multiple of 8, got {ports}")] if ports % 8 else []


@dataclass(frozen=True)
class NatGatewayInput:
    name: str | None = setting(None, "Required after the first; {i} with count > 1.", parse=azure_name)
    count: int = setting(1, "How many alike.", parse=parse_int(1, 100_000))
    resource_group: str | None = setting(None, "Default: the cluster's for userAssignedNATGateway.", parse=azure_name)
    public_ips: int = setting(1, "", parse=parse_int(0, 16))
    public_ip_prefixes: tuple[int, ...] = setting((), "Prefix lengths, 28-31.", parse=prefix_lengths)
    idle_timeout_minutes: int = setting(4, "", parse=parse_int(4, 120))
    usage: Mapping[str, Any] | None = setting(None, "Overrides usage.nat_gateway.", parse=mapping)

    def validate(self) -> list[tuple[str, str]]:
        addresses = self.public_ips + sum(2 ** (32 - n) for n in self.public_ip_prefixes)
        return [("public_ips", "a NAT gateway takes at most 16 public IP addresses")] if addresses > 16 else []


@dataclass(frozen=True)
class EventInput:
    kind: str = setting(MISSING, "", parse=choice("climb"))
    to: float = setting(
        MISSING, "Level reached (ratio for a node, connections for a NAT gateway).", parse=parse_number(0)
    )
    start_minute: float = setting(MISSING, "", parse=parse_number())
    end_minute: float = setting(MISSING, "", parse=parse_number())
    node: Any = setting(None, "Index, name or IP of a node or backend.", parse=lambda v: v)
    nat_gateway: str | None = setting(None, "A NAT gateway's name.", parse=text)
    from_level: float | None = setting(None, "Spelled `from`.", parse=parse_number(0))
    until_minute: float | None = setting(None, "", parse=parse_number())
    failed_per_minute: float = setting(0.0, "", parse=parse_number(0))

    def validate(self) -> list[tuple[str, str]]:
        if self.end_minute < self.start_minute:
            return [("end_minute", f"must not be before start_minute ({self.start_minute})")]
        if self.until_minute is not None and self.until_minute < self.end_minute:
            return [("until_minute", f"must not be before end_minute ({self.end_minute})")]
        return []
