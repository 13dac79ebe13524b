"""Which Azure resources are watched: discovery on its own cadence, and the last good result kept through failures."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from typing import Any

from prometheus_client.registry import CollectorRegistry

from snat_exporter.collectors.azure import metrics as m
from snat_exporter.collectors.azure.config import AzureConfig
from snat_exporter.collectors.azure.discovery import ClusterInfo, Discoverer, Discovery, Target
from snat_exporter.collectors.azure.errors import describe, error_reason
from snat_exporter.collectors.azure.outcomes import QueryFailure
from snat_exporter.collectors.azure.queries import RESOURCE_TYPE_LABEL
from snat_exporter.collectors.azure.shard import Shard

log = logging.getLogger("snat_exporter.azure")


class Watchlist:
    def __init__(self, cfg: AzureConfig, shard: Shard, registry: CollectorRegistry):
        self.cfg = cfg
        self.shard = shard
        self.discovery_errors = m.DISCOVERY_ERRORS.counter(registry)
        self.watched = m.WATCHED_RESOURCES.gauge(registry)
        self.discovery: Discovery | None = None
        self.failure: QueryFailure | None = None  # the last discovery's, until one succeeds
        self._next = float("-inf")

    async def refresh(self, get_json: Any, now: float) -> None:
        """Discovers again when ``discovery_interval`` has passed since the last success (each cycle after a
        failure); a failure keeps the last known resources."""
        if now < self._next:
            return
        discoverer = Discoverer(
            get_json,
            subscription_id=self.cfg.subscription_id,
            cluster=(self.cfg.cluster.resource_group, self.cfg.cluster.name)  # type: ignore[arg-type]
            if self.cfg.cluster.name is not None
            else None,
        )
        try:
            found = await discoverer.discover(self.cfg.resources)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason, retry_after = error_reason(e)
            self.discovery_errors.labels(reason).inc()
            first = self.failure is None or self.failure.reason != reason
            self.failure = QueryFailure(reason, describe(e), retry_after)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "discovery failed; keeping the last known resources",
                extra={
                    "reason": reason,
                    "error": describe(e),
                    "known": len(self.discovery.targets) if self.discovery else 0,
                },
            )
            return  # tried again next cycle
        if found.rejected:
            self.discovery_errors.labels("bad_label").inc(len(found.rejected))
            log.warning(
                "discovery left out what ARM named with text that cannot be a label value",
                extra={"left_out": ", ".join(ascii(r) for r in found.rejected)[:500]},  # ascii: no surrogate
            )
        if self.failure is not None:
            log.info("discovery recovered", extra={"resources": len(found.targets)})
        elif self.discovery is None or {t.resource for t in self.discovery.targets} != {
            t.resource for t in found.targets
        }:
            log.info(
                "watching Azure resources",
                # type/name, as the resource_type and resource labels say it: AKS names its load balancer
                # "kubernetes", which alone reads as if Kubernetes were watched.
                extra={
                    "resources": ",".join(
                        f"{RESOURCE_TYPE_LABEL[t.resource.kind]}/{t.resource.name}" for t in found.targets
                    )
                    or "none"
                },
            )
        self.discovery = found
        self.failure = None
        self._next = now + self.cfg.discovery_interval

    def targets(self) -> list[Target]:
        """The resources this replica's shard watches, counted in ``watched_resources``."""
        if self.discovery is not None:
            known = list(self.discovery.targets)
        else:
            known = [Target(r) for r in self.cfg.resources]  # discovery never succeeded: at least the explicit ones
        targets = [t for t in known if self.shard.owns(t.resource.uri)]
        counts = Tally(RESOURCE_TYPE_LABEL[t.resource.kind] for t in targets)
        for label in RESOURCE_TYPE_LABEL.values():
            self.watched.labels(label).set(counts.get(label, 0))
        return targets

    @property
    def cluster(self) -> ClusterInfo | None:
        """The cluster's outbound info, exported by the primary shard only (so it appears once)."""
        if self.discovery is None or not self.shard.primary:
            return None
        return self.discovery.cluster
