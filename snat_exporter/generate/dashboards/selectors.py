"""The label matchers of the dashboards' queries, from the mixin config and the dashboard variables."""

from __future__ import annotations

from dataclasses import dataclass

from snat_exporter.generate.mixin import MixinConfig


@dataclass(frozen=True)
class Sel:
    """The label matchers every query is built from: the cluster variable on the configured cluster label, and
    the scrape job of the series' source."""

    cluster: str
    exporter: str
    agent: str

    @classmethod
    def of(cls, mixin: MixinConfig) -> Sel:
        cluster = f'{mixin.cluster_label}=~"$cluster"'
        return cls(
            cluster=cluster,
            exporter=f"{cluster}, {mixin.selectors.cluster_exporter}",
            agent=f"{cluster}, {mixin.selectors.node_agent}",
        )

    @property
    def lb(self) -> str:
        return f'{self.exporter}, node=~"$node", load_balancer=~"$load_balancer"'

    @property
    def natgw(self) -> str:
        return f'{self.exporter}, nat_gateway=~"$nat_gateway"'

    @property
    def node(self) -> str:
        return f'{self.agent}, node=~"$node"'
