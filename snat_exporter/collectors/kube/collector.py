"""The Kubernetes identity collector: names the node behind a backend IP and the pod behind a flow.

It watches nodes (the cluster exporter) and/or the pods of one node (the node agent) into in-memory indexes and
offers them to the other collectors as ``.identity``. Its own series are ``snat_kube_node_info`` (a join series:
one per node InternalIP) and the health of the cache. When the API server is unreachable the indexes keep
answering for ``max_age``; other collectors keep their IP labels whatever happens here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from snat_exporter.collectors.base import CollectError, CollectorContext
from snat_exporter.collectors.kube.backoff import Backoff
from snat_exporter.collectors.kube.cache import KubeIdentity, NodeIndex, PodIndex
from snat_exporter.collectors.kube.client import api_client
from snat_exporter.collectors.kube.config import KubernetesConfig
from snat_exporter.collectors.kube.metrics import (
    CACHE_OBJECTS,
    LAST_SYNC,
    NODE_INFO,
    REJECTED_OBJECTS,
    WATCH_RESTARTS,
)
from snat_exporter.collectors.kube.watch import Reflector
from snat_exporter.snapshot import Families, Snapshot

log = logging.getLogger("snat_exporter.kube")

# close() must return promptly: a watch thread blocked in a list request is abandoned (it is a daemon thread).
CLOSE_GRACE = 2.0


class KubeCollector:
    name = "kubernetes"

    def __init__(
        self,
        config: KubernetesConfig,
        context: CollectorContext,
        *,
        environ: Mapping[str, str] = os.environ,
        client: ApiClient | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.clock = context.clock
        self.environ = environ
        self.nodes = NodeIndex()
        self.pods = PodIndex()
        self.identity = KubeIdentity(self.nodes, self.pods)
        self.restarts = WATCH_RESTARTS.counter(context.registry)
        self.node_name = (config.node_name or environ.get("NODE_NAME") or None) if config.pods else None
        self._client = client
        self._api: CoreV1Api | None = None
        self._cilium_said: str | None = None  # the last outcome logged: said once per change
        self._backoff = backoff
        self._setup_error: CollectError | None = None
        self.reflectors: list[Reflector] = []

    def _new_backoff(self) -> Backoff:
        template = self._backoff
        if template is None:
            return Backoff()
        return Backoff(template.initial, template.maximum, template.factor)

    async def start(self) -> None:
        try:
            if self._client is None:
                self._client = api_client(self.config, environ=self.environ)
        except Exception as exc:  # no kubeconfig, no service account: reported by every collect()
            self._setup_error = CollectError("config", f"cannot configure the Kubernetes client: {exc}")
            log.warning("kubernetes client not configured", extra={"error": str(exc)})
            return
        api = self._api = CoreV1Api(self._client)
        common: dict[str, Any] = {
            "page_size": self.config.page_size,
            "list_timeout": self.config.timeout,
            "watch_timeout": self.config.watch_timeout,
            "max_age": self.config.max_age,
            "clock": self.clock,
            "restarts": self.restarts,
        }
        if self.config.nodes:
            self.reflectors.append(Reflector("nodes", api.list_node, self.nodes, backoff=self._new_backoff(), **common))
        elif self.config.own_node and self.node_name:
            # One object: what the node agent needs to know about its node (the datapath label), not the fleet.
            self.reflectors.append(
                Reflector(
                    "nodes",
                    api.list_node,
                    self.nodes,
                    field_selector=f"metadata.name={self.node_name}",
                    backoff=self._new_backoff(),
                    **common,
                )
            )
        if self.config.pods:
            selector = f"spec.nodeName={self.node_name}" if self.node_name else None
            if selector is None:
                log.info("watching the pods of every node: set kubernetes.node_name (or $NODE_NAME) on a node agent")
            self.reflectors.append(
                Reflector(
                    "pods",
                    api.list_pod_for_all_namespaces,
                    self.pods,
                    field_selector=selector,
                    backoff=self._new_backoff(),
                    **common,
                )
            )
        for reflector in self.reflectors:
            reflector.start()

    async def _first_attempts(self, timeout: float) -> None:
        pending = [r for r in self.reflectors if not r.first_attempt.is_set()]
        if not pending:
            return
        deadline = time.monotonic() + timeout

        def wait() -> None:
            for r in pending:
                r.first_attempt.wait(max(0.0, deadline - time.monotonic()))

        await asyncio.to_thread(wait)

    async def collect(self) -> Snapshot:
        if self._setup_error is not None:
            raise self._setup_error
        # The first run waits for the initial lists (like an informer's WaitForCacheSync), within the run deadline.
        await self._first_attempts(min(10.0, self.config.timeout / 2))
        if self._reads_cilium_config():
            await asyncio.to_thread(self._read_cilium_config)
        for reflector in self.reflectors:
            if not reflector.synced:
                failure = reflector.failure
                if failure is None:
                    raise CollectError("not_synced", f"{reflector.resource}: initial list still in progress")
                raise CollectError(
                    failure.reason,
                    f"{reflector.resource} cache not synced: {failure.message}",
                    retry_after=failure.retry_after,
                )
        f = Families()
        if self.config.nodes:
            # Only the exporter that watches every node publishes the join series: a node agent's copy of its own
            # node would make every join on internal_ip many-to-many.
            f.declare(NODE_INFO)
            for ip, node in sorted(self.nodes.items(), key=lambda item: (item[1].name, item[0])):
                f.add(NODE_INFO, {"node": node.name, "internal_ip": ip, "node_pool": node.pool, "zone": node.zone}, 1)
        for reflector in self.reflectors:
            labels = {"resource": reflector.resource}
            f.add(CACHE_OBJECTS, labels, len(reflector.index))
            f.add(REJECTED_OBJECTS, labels, reflector.index.rejected)
            if reflector.last_sync is not None:
                f.add(LAST_SYNC, labels, reflector.last_sync)
        return Snapshot(f.build())

    def _reads_cilium_config(self) -> bool:
        return (
            bool(self.config.cilium_config)
            and self.node_name is not None
            and self._api is not None
            and (self.config.nodes or self.config.own_node)
        )

    def _read_cilium_config(self) -> None:
        """One GET of Cilium's ConfigMap. Not found or forbidden: None (the node label still decides); any other
        failure keeps the last answer. Never fails the run: pod and node identity do not depend on it."""
        namespace, name = self.config.cilium_config.split("/")
        assert self._api is not None
        try:
            obj = self._api.read_namespaced_config_map(name, namespace, _request_timeout=self.config.timeout)
            data = {str(k): str(v) for k, v in (obj.data or {}).items()}
            self.identity.cilium = data
            outcome, level, why = "read", logging.INFO, ""
        except ApiException as e:
            if e.status in (403, 404):
                self.identity.cilium = None
            outcome, level = f"http {e.status}", logging.WARNING if e.status != 404 else logging.INFO
            why = {
                404: "no such ConfigMap (Cilium not installed, or another name)",
                403: "forbidden: needs get on it",
            }.get(e.status or 0, str(e.reason))
        except Exception as e:  # the API server unreachable: the last answer stands
            outcome, level, why = "error", logging.WARNING, f"{type(e).__name__}: {e}"
        if outcome != self._cilium_said:
            log.log(
                level,
                "cilium-config",
                extra={"configmap": self.config.cilium_config, "outcome": outcome, "why": why},
            )
            self._cilium_said = outcome

    async def close(self) -> None:
        for reflector in self.reflectors:
            reflector.stop()
        stuck = await asyncio.to_thread(lambda: [r.resource for r in self.reflectors if not r.join(CLOSE_GRACE)])
        if stuck:
            log.debug("kubernetes watch threads still busy at close", extra={"resources": ",".join(stuck)})
        if self._client is not None:
            self._client.close()


def create(section: KubernetesConfig, context: CollectorContext) -> KubeCollector:
    return KubeCollector(section, context)
