"""The ARM resources a scenario consists of, as Azure Resource Manager returns them (GET and list bodies)."""

from __future__ import annotations

from collections.abc import Iterator

from snat_exporter.simulator.scenario import (
    NAT_OUTBOUND,
    LoadBalancer,
    NatGateway,
    PublicIP,
    PublicIPPrefix,
    Scenario,
    stable_guid,
)

Body = dict[str, object]


def _etag(*parts: object) -> str:
    return f'W/"{stable_guid("etag", *parts)}"'


def _ref(resource_id: str) -> dict[str, str]:
    return {"id": resource_id}


def managed_cluster(s: Scenario) -> Body:
    c = s.cluster
    lb = next((lb for lb in s.load_balancers if lb.name == "kubernetes"), None)
    nat = s.nat_gateways[0] if s.nat_gateways else None
    network: Body = {
        "networkPlugin": c.network_plugin,
        "networkPolicy": "none",
        "networkDataplane": "azure",
        "podCidr": "10.244.0.0/16" if c.network_plugin != "azure" else None,
        "serviceCidr": "10.0.0.0/16",
        "dnsServiceIP": "10.0.0.10",
        "outboundType": c.outbound_type,
        "loadBalancerSku": "standard",
        "ipFamilies": ["IPv4"],
    }
    if network["podCidr"] is None:
        del network["podCidr"]
    if c.outbound_type == "loadBalancer" and lb is not None:
        network["loadBalancerProfile"] = {
            "managedOutboundIPs": {"count": len(lb.frontend_ips)},
            "effectiveOutboundIPs": [_ref(ip.id) for ip in lb.frontend_ips],
            "allocatedOutboundPorts": lb.allocated_outbound_ports,
            "idleTimeoutInMinutes": lb.idle_timeout_minutes,
            "backendPoolType": "nodeIPConfiguration",
        }
    # Only a managed NAT gateway shows in the cluster; a user-assigned one is found through the subnet.
    if c.outbound_type in NAT_OUTBOUND and c.outbound_type != "userAssignedNATGateway" and nat is not None:
        network["natGatewayProfile"] = {
            "managedOutboundIPProfile": {"count": len(nat.public_ips)},
            "effectiveOutboundIPs": [_ref(ip.id) for ip in nat.public_ips],
            "idleTimeoutInMinutes": nat.idle_timeout_minutes,
        }
    pools = []
    for pool in c.agent_pools:
        profile: Body = {
            "name": pool.name,
            "count": pool.count,
            "vmSize": pool.vm_size,
            "osDiskSizeGB": 128,
            "osDiskType": "Ephemeral",
            "kubeletDiskType": "OS",
            "maxPods": 250 if c.network_plugin == "azure" else 110,
            "type": "VirtualMachineScaleSets",
            "availabilityZones": list(pool.zones),
            "enableAutoScaling": False,
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "orchestratorVersion": c.kubernetes_version,
            "currentOrchestratorVersion": c.kubernetes_version,
            "mode": pool.mode,
            "osType": "Linux",
            "osSKU": "Ubuntu",
            "upgradeSettings": {"maxSurge": pool.max_surge},
        }
        if c.byo_vnet:
            profile["vnetSubnetID"] = c.vnet_subnet_id
        if not pool.zones:
            del profile["availabilityZones"]
        pools.append(profile)
    return {
        "id": c.id,
        "location": s.region,
        "name": c.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "sku": {"name": "Base", "tier": "Standard"},
        "identity": {
            "type": "SystemAssigned",
            "principalId": stable_guid("principal", c.id),
            "tenantId": s.tenant_id,
        },
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "kubernetesVersion": c.kubernetes_version,
            "currentKubernetesVersion": c.kubernetes_version,
            "dnsPrefix": f"{c.name}-dns",
            "fqdn": f"{c.name}-dns-{stable_guid('fqdn', c.id)[:8]}.hcp.{s.region}.azmk8s.io",
            "agentPoolProfiles": pools,
            "nodeResourceGroup": c.node_resource_group,
            "enableRBAC": True,
            "networkProfile": network,
        },
    }


def _frontend_id(lb: LoadBalancer, ip: PublicIP) -> str:
    return f"{lb.id}/frontendIPConfigurations/{ip.name}"


def load_balancer(s: Scenario, lb: LoadBalancer) -> Body:
    outbound_pool = f"{lb.id}/backendAddressPools/aksOutboundBackendPool"
    rule_id = f"{lb.id}/outboundRules/aksOutboundRule"
    frontends = [
        {
            "name": ip.name,
            "id": _frontend_id(lb, ip),
            "etag": _etag(lb.id, ip.id),
            "type": "Microsoft.Network/loadBalancers/frontendIPConfigurations",
            "properties": {
                "provisioningState": "Succeeded",
                "privateIPAllocationMethod": "Dynamic",
                "publicIPAddress": _ref(ip.id),
                "outboundRules": [_ref(rule_id)],
            },
        }
        for ip in lb.frontend_ips
    ]
    vmss = f"aks-{s.cluster.agent_pools[0].name}-vmss"
    backend_configs = [
        _ref(
            f"/subscriptions/{s.subscription_id}/resourceGroups/{lb.resource_group}/providers/Microsoft.Compute/"
            f"virtualMachineScaleSets/{vmss}/virtualMachines/{k}/networkInterfaces/{vmss}/ipConfigurations/ipconfig1"
        )
        for k in range(len(lb.backends))
    ]
    pools = [
        {
            "name": name,
            "id": f"{lb.id}/backendAddressPools/{name}",
            "etag": _etag(lb.id, name),
            "type": "Microsoft.Network/loadBalancers/backendAddressPools",
            "properties": {
                "provisioningState": "Succeeded",
                "backendIPConfigurations": backend_configs,
                **({"outboundRules": [_ref(rule_id)]} if name == "aksOutboundBackendPool" else {}),
            },
        }
        for name in ("kubernetes", "aksOutboundBackendPool")
    ]
    return {
        "name": lb.name,
        "id": lb.id,
        "etag": _etag(lb.id),
        "type": "Microsoft.Network/loadBalancers",
        "location": s.region,
        "tags": {"aks-managed-cluster-name": s.cluster.name, "aks-managed-cluster-rg": s.cluster.resource_group},
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid("guid", lb.id),
            "frontendIPConfigurations": frontends,
            "backendAddressPools": pools,
            "loadBalancingRules": [],
            "probes": [],
            "inboundNatRules": [],
            "outboundRules": [
                {
                    "name": "aksOutboundRule",
                    "id": rule_id,
                    "etag": _etag(rule_id),
                    "type": "Microsoft.Network/loadBalancers/outboundRules",
                    "properties": {
                        "provisioningState": "Succeeded",
                        "allocatedOutboundPorts": lb.allocated_outbound_ports,
                        "protocol": "All",
                        "enableTcpReset": True,
                        "idleTimeoutInMinutes": lb.idle_timeout_minutes,
                        "backendAddressPool": _ref(outbound_pool),
                        "frontendIPConfigurations": [_ref(_frontend_id(lb, ip)) for ip in lb.frontend_ips],
                    },
                }
            ],
            "inboundNatPools": [],
        },
    }


def nat_gateway(s: Scenario, nat: NatGateway) -> Body:
    return {
        "name": nat.name,
        "id": nat.id,
        "etag": _etag(nat.id),
        "type": "Microsoft.Network/natGateways",
        "location": s.region,
        "sku": {"name": "Standard"},
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid("guid", nat.id),
            "idleTimeoutInMinutes": nat.idle_timeout_minutes,
            "publicIpAddresses": [_ref(ip.id) for ip in nat.public_ips],
            "publicIpPrefixes": [_ref(p.id) for p in nat.public_ip_prefixes],
            "subnets": [_ref(sid) for sid in nat.subnets],
        },
    }


def public_ip(s: Scenario, ip: PublicIP, attached: str | None, nat: bool) -> Body:
    props: Body = {
        "provisioningState": "Succeeded",
        "resourceGuid": stable_guid("guid", ip.id),
        "ipAddress": ip.address,
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": "Static",
        "idleTimeoutInMinutes": 4,
        "ipTags": [],
    }
    if attached:
        props["natGateway" if nat else "ipConfiguration"] = _ref(attached)
    return {
        "name": ip.name,
        "id": ip.id,
        "etag": _etag(ip.id),
        "location": s.region,
        "type": "Microsoft.Network/publicIPAddresses",
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": props,
    }


def public_ip_prefix(s: Scenario, prefix: PublicIPPrefix, nat_id: str | None) -> Body:
    props: Body = {
        "provisioningState": "Succeeded",
        "resourceGuid": stable_guid("guid", prefix.id),
        "prefixLength": prefix.length,
        "ipPrefix": prefix.prefix,
        "publicIPAddressVersion": "IPv4",
        "ipTags": [],
    }
    if nat_id:
        props["natGateway"] = _ref(nat_id)
    return {
        "name": prefix.name,
        "id": prefix.id,
        "etag": _etag(prefix.id),
        "location": s.region,
        "type": "Microsoft.Network/publicIPPrefixes",
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": props,
    }


def subnet(subnet_id: str, nat_id: str | None) -> Body:
    props: Body = {"provisioningState": "Succeeded", "addressPrefix": "10.224.0.0/16"}
    if nat_id:
        props["natGateway"] = _ref(nat_id)
    props["privateEndpointNetworkPolicies"] = "Disabled"
    props["privateLinkServiceNetworkPolicies"] = "Enabled"
    return {
        "name": subnet_id.rsplit("/", 1)[-1],
        "id": subnet_id,
        "etag": _etag(subnet_id),
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "properties": props,
    }


def virtual_network(s: Scenario, vnet_id: str, subnets: list[Body]) -> Body:
    return {
        "name": vnet_id.rsplit("/", 1)[-1],
        "id": vnet_id,
        "etag": _etag(vnet_id),
        "type": "Microsoft.Network/virtualNetworks",
        "location": s.region,
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid("guid", vnet_id),
            "addressSpace": {"addressPrefixes": ["10.224.0.0/12"]},
            "subnets": subnets,
        },
    }


def all_resources(s: Scenario) -> Iterator[tuple[str, Body]]:
    """(resource ID, body) of every ARM resource of the scenario."""
    yield s.cluster.id, managed_cluster(s)
    for lb in s.load_balancers:
        yield lb.id, load_balancer(s, lb)
        for ip in lb.frontend_ips:
            yield ip.id, public_ip(s, ip, _frontend_id(lb, ip), nat=False)
    for nat in s.nat_gateways:
        yield nat.id, nat_gateway(s, nat)
        for ip in nat.public_ips:
            yield ip.id, public_ip(s, ip, nat.id, nat=True)
        for prefix in nat.public_ip_prefixes:
            yield prefix.id, public_ip_prefix(s, prefix, nat.id)
    vnets: dict[str, list[Body]] = {}
    for subnet_id, nat_id in s.subnets.items():
        body = subnet(subnet_id, nat_id)
        vnets.setdefault(subnet_id.rsplit("/subnets/", 1)[0], []).append(body)
        yield subnet_id, body
    for vnet_id, subnet_bodies in vnets.items():
        yield vnet_id, virtual_network(s, vnet_id, subnet_bodies)
