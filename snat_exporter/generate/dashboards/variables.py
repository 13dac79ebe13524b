"""The dashboard variables: data source, cluster, node, load balancer, NAT gateway."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model

from snat_exporter.generate.dashboards.panels import DATASOURCE
from snat_exporter.generate.dashboards.selectors import Sel
from snat_exporter.generate.mixin import MixinConfig


def variables(mixin: MixinConfig, s: Sel) -> list[Any]:
    def query_var(name: str, label: str, query: str, description: str) -> dash.QueryVariable:
        return (
            dash.QueryVariable(name)
            .label(label)
            .description(description)
            .datasource(DATASOURCE)
            .query({"query": query, "refId": f"{name}-variable"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .include_all(True)
            .all_value(".*")
            .multi(True)
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text="default", value="default")),
        query_var(
            "cluster",
            "Cluster",
            f"label_values(snat_exporter_build_info{{{mixin.selectors.cluster_exporter}}}, {mixin.cluster_label})",
            f"The `{mixin.cluster_label}` label your Prometheus adds (relabelling or federation). All also matches series "
            "without it.",
        ),
        query_var(
            "node",
            "Node",
            f'label_values({{__name__=~"azure_lb_snat_ports_allocated|snat_conntrack_entries", {s.cluster}}}, node)',
            "Kubernetes nodes seen by the load balancer metrics or the node agents.",
        ),
        query_var(
            "load_balancer",
            "Load balancer",
            f"label_values(azure_lb_snat_ports_allocated{{{s.exporter}}}, load_balancer)",
            "Azure load balancers whose SNAT ports are exported.",
        ),
        query_var(
            "nat_gateway",
            "NAT gateway",
            f"label_values(azure_natgw_public_ips{{{s.exporter}}}, nat_gateway)",
            "Azure NAT gateways whose metrics are exported.",
        ),
    ]
