"""``snat-exporter diagnose``: gather observations, analyse, render; the exit code says whether to worry."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from snat_exporter.config import Config
from snat_exporter.diagnose.findings import analyse
from snat_exporter.diagnose.model import Observations
from snat_exporter.diagnose.report import exit_code, render

log = logging.getLogger("snat_exporter.diagnose")


class DiagnoseError(Exception):
    """The data could not be read (Azure or Prometheus unreachable, refused, malformed)."""


@dataclass
class Result:
    text: str
    exit_code: int


def kubernetes_node_names(config: Config) -> dict[str, str]:
    """InternalIP -> node name, from one list of nodes; empty when the kubernetes section is disabled."""
    if not config.kubernetes.enabled:
        return {}
    from kubernetes.client import CoreV1Api

    from snat_exporter.collectors.kube.client import api_client

    with api_client(config.kubernetes) as api:
        nodes = CoreV1Api(api).list_node(_request_timeout=config.kubernetes.timeout)
    names: dict[str, str] = {}
    for node in nodes.items:
        name = node.metadata.name if node.metadata else None
        for address in (node.status.addresses if node.status else None) or []:
            if address.type == "InternalIP" and name:
                names[str(address.address)] = str(name)
    return names


async def observe(config: Config, prometheus: str | None, since: float, cluster: str | None = None) -> Observations:
    if prometheus:
        from snat_exporter.diagnose.prometheus import PrometheusError, PrometheusSource

        try:
            return await PrometheusSource(prometheus, since, cluster=cluster).observe()
        except PrometheusError as e:
            raise DiagnoseError(str(e)) from None
    if not config.azure.enabled and not config.azure.cluster.name and not config.azure.resources:
        raise DiagnoseError("nothing to read: give --prometheus URL, or a --config whose azure section names a cluster")
    from azure.core.exceptions import AzureError

    from snat_exporter.collectors.azure.errors import describe
    from snat_exporter.diagnose.azure import AzureSource

    try:
        names = await asyncio.to_thread(kubernetes_node_names, config)
    except Exception as e:  # names are a nicety: the report falls back to backend IPs
        log.warning("cannot list Kubernetes nodes; nodes are named by IP", extra={"error": f"{type(e).__name__}: {e}"})
        names = {}
    source = AzureSource(config, since, names)
    try:
        return await source.observe()
    except (AzureError, ValueError) as e:
        raise DiagnoseError(f"cannot read Azure: {describe(e)}") from None
    finally:
        await source.close()


def diagnose(
    config: Config, *, prometheus: str | None, since: float, output: str, cluster: str | None = None
) -> Result:
    observations = asyncio.run(observe(config, prometheus, since, cluster))
    capacity, findings = analyse(observations)
    return Result(render(observations, capacity, findings, output), exit_code(findings))
