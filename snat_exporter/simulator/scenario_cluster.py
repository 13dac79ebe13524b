"""Loading a scenario, the cluster part: the AKS cluster, its agent pools and nodes, named and addressed as AKS
would (node resource group, VMSS instance names, addresses from the node subnet)."""

from __future__ import annotations

from snat_exporter.simulator.scenario import AgentPool, Cluster, Node, ScenarioError, stable_fraction
from snat_exporter.simulator.scenario_input import AgentPoolInput, ClusterInput, NodeInput, TopInput, read
from snat_exporter.simulator.scenario_network import arm_id


def _base36(number: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out.rjust(width, "0")


def build_cluster(top: TopInput) -> tuple[Cluster, ClusterInput, str]:
    """(the cluster, its section, the ID of the node subnet)."""
    c = read(ClusterInput, top.cluster, "cluster")
    sub, region = top.subscription_id, top.region
    node_rg = c.node_resource_group or f"MC_{c.resource_group}_{c.name}_{region}"
    byo = c.byo_vnet if c.byo_vnet is not None else c.outbound_type == "userAssignedNATGateway"
    pools = []
    for i, raw in enumerate(c.agent_pools):
        p = read(AgentPoolInput, raw, f"cluster.agent_pools[{i}]")
        mode = p.mode or ("System" if i == 0 else "User")
        pools.append(AgentPool(p.name, p.count, p.vm_size, p.zones, p.max_surge, mode))
    if not pools:
        raise ScenarioError("cluster.agent_pools", "needs at least one pool")
    digits = _vmss_digits(sub, c)
    if byo:
        vnet_rg, vnet, subnet = c.resource_group, f"vnet-{c.name}", "nodes"
    else:
        vnet_rg, vnet, subnet = node_rg, f"aks-vnet-{digits}", "aks-subnet"
    subnet_id = arm_id(sub, vnet_rg, "Microsoft.Network", "virtualNetworks", vnet) + f"/subnets/{subnet}"
    # AKS itself returns the cluster ID with a lower-case "resourcegroups"; consumers must not rely on casing.
    cluster_id = (
        f"/subscriptions/{sub}/resourcegroups/{c.resource_group}/providers/Microsoft.ContainerService/"
        f"managedClusters/{c.name}"
    )
    cluster = Cluster(
        resource_group=c.resource_group,
        name=c.name,
        node_resource_group=node_rg,
        outbound_type=c.outbound_type,
        kubernetes_version=c.kubernetes_version,
        network_plugin=c.network_plugin,
        agent_pools=tuple(pools),
        vnet_subnet_id=subnet_id,
        byo_vnet=byo,
        id=cluster_id,
    )
    return cluster, c, subnet_id


def _vmss_digits(sub: str, c: ClusterInput) -> str:
    return f"{int(stable_fraction('vmss', sub, c.resource_group, c.name) * 1e8):08d}"


def build_nodes(top: TopInput, cluster: Cluster, c: ClusterInput) -> list[Node]:
    """Explicit nodes, or AKS-like ones from the pools; no name or IP twice."""
    nodes: list[Node] = []
    pools = cluster.agent_pools
    if top.nodes is not None:
        for i, raw in enumerate(top.nodes):
            n = read(NodeInput, raw, f"nodes[{i}]")
            nodes.append(Node(n.name, n.ip, n.pool or pools[0].name, n.zone))
    else:
        hosts = c.node_subnet.hosts()
        for _ in range(3):  # Azure reserves the first addresses of a subnet: nodes start at .4
            next(hosts)
        digits = _vmss_digits(top.subscription_id, c)
        for pool in pools:
            for j in range(pool.count):
                zone = f"{top.region}-{pool.zones[j % len(pool.zones)]}" if pool.zones else "0"
                try:
                    ip = str(next(hosts))
                except StopIteration:
                    raise ScenarioError("cluster.node_subnet", "too small for the nodes of the agent pools") from None
                nodes.append(Node(f"aks-{pool.name}-{digits}-vmss{_base36(j, 6)}", ip, pool.name, zone))
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for key in (node.name, node.ip):
            if key in seen:
                raise ScenarioError(f"nodes[{i}]", f"duplicate node name or IP {key!r}")
            seen[key] = i
    return nodes
