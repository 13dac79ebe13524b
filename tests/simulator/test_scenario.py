"""Scenarios: the built-ins tell the stories docs/simulator.md promises, and bad files name the bad field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from snat_exporter.simulator import Simulator, builtin_scenarios, default_ports_per_backend, load_scenario
from snat_exporter.simulator.scenario import ScenarioError
from tests.conftest import FakeClock

MINUTES = range(-60, 61)


def sim_for(name: str) -> Simulator:
    return Simulator(load_scenario(name), clock=FakeClock())


def test_builtins_are_listed() -> None:
    assert {"steady", "exhaustion", "natgw"} <= set(builtin_scenarios())


@pytest.mark.parametrize(
    ("pool", "frontends", "ports"),
    [(1, 1, 1024), (50, 1, 1024), (51, 1, 512), (100, 2, 1024), (100, 3, 1024), (101, 1, 256), (1000, 1, 32)],
)
def test_default_port_allocation_table(pool: int, frontends: int, ports: int) -> None:
    assert default_ports_per_backend(pool, frontends) == ports


def test_steady_story() -> None:
    sim = sim_for("steady")
    s = sim.scenario
    assert len(s.nodes) == 60 and len({n.ip for n in s.nodes}) == 60
    assert s.nodes[0].ip == "10.224.0.4" and s.nodes[0].name.startswith("aks-nodepool1-")
    assert s.nodes[0].name.endswith("-vmss000000") and s.nodes[59].name.endswith("-vmss00001n")
    lb = s.load_balancers[0]
    assert (lb.name, lb.ports_per_backend, len(lb.frontend_ips)) == ("kubernetes", 512, 1)
    for node in s.nodes[::7]:
        for minute in MINUTES[::5]:
            used = sim.value("kubernetes", "UsedSnatPorts", minute, BackendIPAddress=node.ip, ProtocolType="TCP")
            assert used is not None and 0.10 * 512 - 1 <= used <= 0.40 * 512 + 1
            assert (
                sim.value(
                    "kubernetes", "SnatConnectionCount", minute, BackendIPAddress=node.ip, ConnectionState="Failed"
                )
                == 0
            )


def test_exhaustion_story() -> None:
    sim = sim_for("exhaustion")
    s = sim.scenario
    node = s.nodes[2]
    assert (node.ip, len(s.nodes), s.load_balancers[0].ports_per_backend) == ("10.224.0.6", 6, 1024)

    def used(ip: str, minute: int) -> float | None:
        return sim.value("kubernetes", "UsedSnatPorts", minute, BackendIPAddress=ip, ProtocolType="TCP")

    def failed(ip: str, minute: int) -> float | None:
        return sim.value("kubernetes", "SnatConnectionCount", minute, BackendIPAddress=ip, ConnectionState="Failed")

    assert used(node.ip, -28) == round(0.30 * 1024)
    assert used(node.ip, -18) == round(0.65 * 1024)
    for minute in range(-8, 61):
        assert used(node.ip, minute) == 1024
        assert failed(node.ip, minute) > 0  # type: ignore[operator]
    assert all(failed(node.ip, m) == 0 for m in range(-60, -8))
    for other in s.nodes:
        if other is node:
            continue
        for minute in MINUTES:
            assert 0.15 * 1024 - 1 <= used(other.ip, minute) <= 0.35 * 1024 + 1  # type: ignore[operator]
            assert failed(other.ip, minute) == 0


def test_natgw_story() -> None:
    sim = sim_for("natgw")
    s = sim.scenario
    assert s.cluster.outbound_type == "managedNATGateway" and len(s.nodes) == 8 and not s.load_balancers
    nat = s.nat_gateways[0]
    assert len(nat.public_ips) == 2 and nat.snat_ports == 129024
    for minute in MINUTES:
        active = sim.value(nat.name, "TotalConnectionCount", minute)
        assert 2000 <= active <= 6000  # type: ignore[operator]
        assert sim.value(nat.name, "SNATConnectionCount", minute, ConnectionState="Failed") == 0
        assert sim.value(nat.name, "SNATConnectionCount", minute, ConnectionState="Attempted", Protocol="6") > 0  # type: ignore[operator]


def test_values_are_deterministic_and_relative_to_the_start() -> None:
    a, b = sim_for("exhaustion"), Simulator(load_scenario("exhaustion"), clock=FakeClock(1_900_000_020.0))
    ip = a.scenario.nodes[4].ip
    series = [a.value("kubernetes", "SnatConnectionCount", m, BackendIPAddress=ip) for m in MINUTES]
    assert series == [b.value("kubernetes", "SnatConnectionCount", m, BackendIPAddress=ip) for m in MINUTES]
    assert a.scenario == load_scenario("exhaustion")


GOOD: dict[str, Any] = {
    "subscription_id": "11111111-2222-3333-4444-555555555555",
    "cluster": {"resource_group": "rg", "name": "aks", "agent_pools": [{"name": "pool", "count": 3}]},
    "load_balancers": [{"name": "kubernetes", "allocated_outbound_ports": 1024}],
    "events": [{"kind": "climb", "node": 1, "start_minute": -10, "end_minute": -5, "to": 1.0}],
    "faults": [{"kind": "status", "status": 429, "retry_after": 3}],
}


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    for key in keys[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[keys[-1]]
    else:
        data[keys[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("subscription_id", _DELETE, "subscription_id: required"),
        ("subscription_id", "not-a-guid", "subscription_id: expected a GUID"),
        ("lag_minutes", -1, "lag_minutes: must be at least 0"),
        ("cluster.outbound_type", "nat", "cluster.outbound_type: expected one of"),
        ("cluster.agent_pools[0].count", "three", "cluster.agent_pools[0].count: expected a whole number"),
        (
            "load_balancers[0].allocated_outbound_ports",
            1020,
            "load_balancers[0].allocated_outbound_ports: must be a multiple of 8",
        ),
        ("load_balancers[0].frontend_ip", 2, "load_balancers[0].frontend_ip: unknown key"),
        ("load_balancers[0].name", "other", "load_balancers: outbound_type loadBalancer needs"),
        ("load_balancers[0].usage", {"min": 0.5, "max": 0.2}, "load_balancers[0].usage.min: must not exceed max"),
        ("events[0].node", 9, "events[0].node: node index 9 out of range"),
        ("events[0].end_minute", -20, "events[0].end_minute: must not be before start_minute"),
        ("faults[0].kind", "explode", "faults[0].kind: expected one of"),
        ("faults[0].times", 0, "faults[0].times: must be at least 1"),
        ("faults[0].retry_after", "soon", "faults[0].retry_after: expected float"),
    ],
)
def test_loading_errors_name_the_field(path: str, value: Any, error: str) -> None:
    data = copy.deepcopy(GOOD)
    load_scenario(data)
    _set(data, path, value)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(data)
    assert str(caught.value).startswith(error), str(caught.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no built-in scenario 'stedy'"):
        load_scenario("stedy")
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("subscription_id: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    good = tmp_path / "mine.yaml"
    good.write_text(
        "subscription_id: 11111111-2222-3333-4444-555555555555\n"
        "cluster: {resource_group: rg, name: aks, outbound_type: managedNATGateway}\n"
        "nat_gateways: [{name: nat, public_ips: 16}]\n"
    )
    scenario = load_scenario(good)
    assert scenario.name == "mine" and scenario.nat_gateways[0].snat_ports == 16 * 64512
