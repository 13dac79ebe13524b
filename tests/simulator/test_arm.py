"""The ARM resource GETs the exporter's discovery follows: cluster -> load balancer / NAT gateway -> public IPs."""

from __future__ import annotations

from typing import Any

import aiohttp

from snat_exporter.simulator import load_scenario

API = {"api-version": "2024-05-01"}


async def get(sim: Any, path: str, params: dict[str, str] | None = None, **headers: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.url + path, params=API if params is None else params, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_load_balancer_discovery_chain(make_sim) -> None:
    sim = await make_sim("steady")
    s = sim.scenario
    # Any api-version of the right form, any bearer token (or none).
    status, cluster = await get(sim, s.cluster.id, {"api-version": "2025-10-02-preview"}, Authorization="Bearer x")
    assert status == 200
    network = cluster["properties"]["networkProfile"]
    assert network["outboundType"] == "loadBalancer"
    assert network["loadBalancerSku"] == "standard"
    assert network["loadBalancerProfile"]["allocatedOutboundPorts"] == 0
    assert network["loadBalancerProfile"]["managedOutboundIPs"] == {"count": 1}
    assert cluster["properties"]["agentPoolProfiles"][0]["count"] == 60
    assert cluster["properties"]["agentPoolProfiles"][0]["upgradeSettings"] == {"maxSurge": "10%"}
    node_rg = cluster["properties"]["nodeResourceGroup"]
    assert node_rg == "MC_rg-shop_aks-shop_westeurope"

    status, lbs = await get(
        sim, f"/subscriptions/{s.subscription_id}/resourceGroups/{node_rg}/providers/Microsoft.Network/loadBalancers"
    )
    assert status == 200
    [lb] = [x for x in lbs["value"] if x["name"] == "kubernetes"]
    [rule] = lb["properties"]["outboundRules"]
    assert rule["properties"]["allocatedOutboundPorts"] == 0
    assert rule["properties"]["enableTcpReset"] is True
    assert rule["properties"]["protocol"] == "All"
    assert len(lb["properties"]["backendAddressPools"][0]["properties"]["backendIPConfigurations"]) == 60
    [frontend] = lb["properties"]["frontendIPConfigurations"]
    ip_id = frontend["properties"]["publicIPAddress"]["id"]
    assert ip_id == network["loadBalancerProfile"]["effectiveOutboundIPs"][0]["id"]
    status, ip = await get(sim, ip_id)
    assert status == 200
    # The address the metrics report as FrontendIPAddress.
    assert ip["properties"]["ipAddress"] == s.load_balancers[0].frontend_ips[0].address

    status, nats = await get(
        sim, f"/subscriptions/{s.subscription_id}/resourceGroups/{node_rg}/providers/Microsoft.Network/natGateways"
    )
    assert (status, nats) == (200, {"value": []})


async def test_managed_nat_gateway_discovery(make_sim) -> None:
    sim = await make_sim("natgw")
    s = sim.scenario
    status, cluster = await get(sim, s.cluster.id.replace("resourcegroups", "resourceGroups"))  # ARM ignores case
    assert status == 200
    profile = cluster["properties"]["networkProfile"]["natGatewayProfile"]
    assert cluster["properties"]["networkProfile"]["outboundType"] == "managedNATGateway"
    assert profile["managedOutboundIPProfile"] == {"count": 2}
    status, nats = await get(
        sim,
        f"/subscriptions/{s.subscription_id}/resourceGroups/{s.cluster.node_resource_group}"
        "/providers/Microsoft.Network/natGateways",
    )
    [nat] = nats["value"]
    assert nat["sku"] == {"name": "Standard"}
    assert nat["properties"]["idleTimeoutInMinutes"] == 4
    assert [x["id"] for x in nat["properties"]["publicIpAddresses"]] == [
        x["id"] for x in profile["effectiveOutboundIPs"]
    ]
    [subnet_ref] = nat["properties"]["subnets"]
    status, subnet = await get(sim, subnet_ref["id"])
    assert status == 200 and subnet["properties"]["natGateway"]["id"] == nat["id"]


async def test_user_assigned_nat_gateway_via_the_subnet(make_sim) -> None:
    scenario = load_scenario(
        {
            "subscription_id": "11111111-2222-3333-4444-555555555555",
            "cluster": {
                "resource_group": "rg-net",
                "name": "aks-byo",
                "outbound_type": "userAssignedNATGateway",
                "agent_pools": [{"name": "system", "count": 2}],
            },
            "nat_gateways": [{"name": "natgw-egress", "public_ips": 1, "public_ip_prefixes": [30]}],
        }
    )
    sim = await make_sim(scenario)
    status, cluster = await get(sim, scenario.cluster.id)
    subnet_id = cluster["properties"]["agentPoolProfiles"][0]["vnetSubnetID"]
    assert "natGatewayProfile" not in cluster["properties"]["networkProfile"]
    status, subnet = await get(sim, subnet_id)
    status, nat = await get(sim, subnet["properties"]["natGateway"]["id"])
    assert nat["name"] == "natgw-egress" and "/resourceGroups/rg-net/" in nat["id"]
    status, prefix = await get(sim, nat["properties"]["publicIpPrefixes"][0]["id"])
    assert prefix["properties"]["prefixLength"] == 30
    assert scenario.nat_gateways[0].snat_ports == 64512 * 5


async def test_errors_have_the_arm_shape(make_sim) -> None:
    sim = await make_sim("steady")
    s = sim.scenario
    missing = (
        f"/subscriptions/{s.subscription_id}/resourceGroups/rg-shop/providers/Microsoft.Network/loadBalancers/nope"
    )
    status, body = await get(sim, missing)
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    status, body = await get(sim, s.cluster.id, {})
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    status, body = await get(sim, s.cluster.id, {"api-version": "latest"})
    assert status == 400 and body["error"]["code"] == "InvalidApiVersionParameter"
    status, body = await get(sim, s.cluster.id, None, Authorization="Basic dXNlcjpwYXNz")
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    assert [r.status for r in sim.requests] == [404, 400, 400, 401]
    assert all(r.operation == "arm" for r in sim.requests)
