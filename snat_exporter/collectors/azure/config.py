"""Settings of the Azure Monitor collector (section ``azure``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from snat_exporter.settings import (
    parse_choice,
    parse_int,
    parse_str,
    parse_string_list,
    parse_url,
    parse_uuid,
    setting,
)

RESOURCE_TYPES = {"loadbalancers": "loadBalancers", "natgateways": "natGateways"}

_RESOURCE_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]+)"
    r"/providers/Microsoft\.Network/(?P<type>loadBalancers|natGateways)/(?P<name>[-\w._]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True, order=True)
class ResourceId:
    """An Azure resource the collector reads metrics of; ``kind`` is ``loadBalancers`` or ``natGateways``."""

    subscription_id: str
    resource_group: str
    kind: str
    name: str

    @property
    def uri(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/{self.kind}/{self.name}"
        )

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        m = _RESOURCE_ID_RE.match(text.strip())
        if not m:
            raise ValueError(
                "expected /subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/"
                f"loadBalancers|natGateways/<name>, got {text!r}"
            )
        return cls(
            subscription_id=parse_uuid(m.group("sub")),
            resource_group=m.group("rg"),
            kind=RESOURCE_TYPES[m.group("type").lower()],
            name=m.group("name"),
        )


def parse_resource_id(value: Any) -> ResourceId:
    return ResourceId.parse(parse_str(value))


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClusterRef:
    resource_group: str | None = setting(None, "Resource group of the AKS managed cluster to discover from.")
    name: str | None = setting(None, "Name of the AKS managed cluster.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if (self.resource_group is None) != (self.name is None):
            missing = "name" if self.name is None else "resource_group"
            yield missing, "required: give both resource_group and name, or neither"


CREDENTIALS = ("default", "workload_identity", "managed_identity", "environment", "none")
BATCH_MODES = ("auto", "always", "never")
MAX_BATCH_SIZE = 50
# The metrics data plane of each cloud, by its ARM endpoint.
_DATA_PLANE_SUFFIX = {
    "https://management.azure.com": "azure.com",
    "https://management.usgovcloudapi.net": "azure.us",
    "https://management.chinacloudapi.cn": "azure.cn",
}
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(value: Any) -> str:
    """``i/n`` with 0 <= i < n -> the same text, normalised."""
    text = parse_str(value)
    m = _SHARD_RE.match(text)
    if not m:
        raise ValueError(f"expected i/n (e.g. 0/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"expected 0 <= i < n, got {text!r}")
    return f"{index}/{count}"


def parse_endpoint_template(value: Any) -> str:
    """An http(s) URL that may hold ``{region}`` in its host."""
    text = parse_str(value).strip().rstrip("/")
    if "{" in text.replace("{region}", ""):
        raise ValueError(f"the only placeholder allowed is {{region}}, got {text!r}")
    parse_url(text.replace("{region}", "region"))
    return text


@dataclass(frozen=True)
class AzureConfig:
    enabled: bool = setting(False, "Collect Azure Load Balancer and NAT Gateway SNAT metrics from Azure Monitor.")
    interval: float = setting(60.0, "How often to query Azure Monitor (its metrics have a 1-minute grain).")
    timeout: float = setting(30.0, "Deadline of one HTTP request to Azure.")
    max_age: float = setting(
        900.0, "After failures, keep serving the last good values (marked stale) for this long, then drop them."
    )
    window: float = setting(
        600.0, "Trailing window queried each cycle; Azure data lags 2-10 minutes, the newest valued minute wins."
    )
    revision_window: float = setting(
        300.0,
        "After the first good answer, each cycle queries only from the oldest of the newest valued minutes it "
        "already has, less this much (Azure fills in and revises the newest few minutes), instead of the whole "
        "`window`: fewer points to fetch and parse. A minute Azure revises later than this is not re-counted.",
    )
    secondary_interval: float = setting(
        600.0,
        "How often the secondary metric groups are queried (load balancer data path and health probe availability, "
        "NAT gateway bytes and packets: no alert reads them), rounded to a whole number of cycles; SNAT ports, "
        "connections, NAT gateway dropped packets and datapath availability are queried every cycle. The secondary "
        "series keep their last values in between (`azure_metric_sample_age_seconds` shows it). Must be shorter "
        "than `max_age`. Set it to `interval` to query everything every cycle.",
    )
    subscription_id: str | None = setting(
        None, "Subscription of the AKS cluster; required with `cluster`.", parse=parse_uuid
    )
    arm_endpoint: str = setting(
        "https://management.azure.com",
        "Azure Resource Manager endpoint (sovereign clouds, or a loopback simulator over http).",
        parse=parse_url,
    )
    arm_audience: str | None = setting(
        None,
        "Token audience for `arm_endpoint` (`/.default` is appended), for a custom cloud or a proxy whose audience "
        "differs from its URL. Unset: the known cloud's audience (e.g. `https://management.core.usgovcloudapi.net` "
        "for `https://management.usgovcloudapi.net`), else `arm_endpoint` itself.",
        parse=parse_url,
    )
    credential: str = setting(
        "default",
        "`default` (DefaultAzureCredential: environment, workload identity, managed identity), "
        "`workload_identity`, `managed_identity`, `environment`, or `none` (loopback simulator only).",
        parse=parse_choice(*CREDENTIALS),
    )
    managed_identity_client_id: str | None = setting(
        None, "Client ID of a user-assigned managed identity (credential managed_identity or default)."
    )
    cluster: ClusterRef = setting(
        default_factory=ClusterRef, doc="AKS cluster to discover the load balancer / NAT gateways from."
    )
    resources: tuple[ResourceId, ...] = setting(
        default_factory=tuple,
        doc="Explicit load balancer / NAT gateway resource IDs (instead of, or as well as, `cluster`).",
        parse=parse_string_list(parse_resource_id),
    )
    discovery_interval: float = setting(600.0, "How often to re-read the cluster to find its outbound resources.")
    concurrency: int = setting(4, "Azure requests in flight at once.", parse=parse_int(1, 64))
    top: int = setting(
        10000,
        "`top` sent with every split query (Azure's default of 10 silently drops nodes).",
        parse=parse_int(11, 100000),
    )
    retries: int = setting(
        2, "Retries of a throttled (429, 529) or failed (5xx) request within one cycle.", parse=parse_int(0, 10)
    )
    batch: str = setting(
        "auto",
        "Read metrics with the data-plane `metrics:getBatch` API (up to `batch_size` resources of one subscription, "
        "region and type per call): `auto` uses it and falls back to per-resource Metrics List when getBatch fails "
        "in a way Metrics List does not (401/403: batch needs Monitoring Reader on the subscription; 404; its "
        "regional host unreachable, not resolving or failing TLS), trying getBatch again after 5 minutes, doubling "
        "up to an hour; `always` never falls back, `never` always queries per resource.",
        parse=parse_choice(*BATCH_MODES),
    )
    batch_endpoint: str | None = setting(
        None,
        "Metrics data-plane endpoint of getBatch; `{region}` becomes the resource's ARM `location`. Unset: derived "
        "from `arm_endpoint` (`https://{region}.metrics.monitor.azure.com` for the public cloud, `.azure.us` / "
        "`.azure.cn` for US Government / China, the simulator's own URL for a loopback simulator).",
        parse=parse_endpoint_template,
    )
    batch_audience: str | None = setting(
        None,
        "Token audience of the metrics data plane (`/.default` is appended). Unset: derived like `batch_endpoint`.",
        parse=parse_url,
    )
    batch_size: int = setting(
        50, "Resources per getBatch call (Azure allows at most 50).", parse=parse_int(1, MAX_BATCH_SIZE)
    )
    batch_series_limit: int = setting(
        500000,
        "Time series one getBatch call may return (Azure's limit is 500,000); calls are made smaller when the "
        "series counted in the last cycle say a full batch would exceed it.",
        parse=parse_int(1, 500000),
    )
    shard: str | None = setting(
        None,
        "`i/n`: this replica queries the metrics of shard i (0-based) of n, split by a stable hash of the resource "
        "ID; every replica still runs discovery. Unset with `shards` unset: one replica does everything.",
        parse=parse_shard,
    )
    shards: int | None = setting(
        None,
        "Number of shards when `shard` is unset: this replica's index is the StatefulSet ordinal at the end of "
        "`$HOSTNAME` (`snat-exporter-2` is shard 2).",
        parse=parse_int(1, 1024),
    )

    def metrics_endpoint(self) -> str | None:
        """The getBatch endpoint template: the setting, else derived from the ARM endpoint (None: unknown cloud)."""
        if self.batch_endpoint is not None:
            return self.batch_endpoint
        arm = self.arm_endpoint.rstrip("/")
        if arm.startswith("http://") and is_loopback_url(arm):
            return arm  # the simulator serves getBatch at its base URL
        suffix = _DATA_PLANE_SUFFIX.get(arm)
        return None if suffix is None else "https://{region}.metrics.monitor." + suffix

    def metrics_audience(self) -> str:
        if self.batch_audience is not None:
            return self.batch_audience
        suffix = _DATA_PLANE_SUFFIX.get(self.arm_endpoint.rstrip("/"), "azure.com")
        return "https://metrics.monitor." + suffix

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.interval < 10:
            yield "interval", "must be at least 10s (Azure Monitor has a 1-minute grain)"
        if self.window < 120:
            yield "window", "must be at least 2m"
        if self.revision_window >= self.window:
            yield "revision_window", "must be shorter than `window`"
        if self.secondary_interval >= self.max_age:
            yield (
                "secondary_interval",
                "must be shorter than `max_age`, or the secondary series would expire between queries",
            )
        http = self.arm_endpoint.startswith("http://")
        loopback = is_loopback_url(self.arm_endpoint)
        if http and not loopback:
            yield "arm_endpoint", "plain http is only allowed to a loopback address (the simulator)"
        if self.credential == "none" and not (http and loopback):
            yield "credential", "`none` is only accepted with a loopback http arm_endpoint (the simulator)"
        if self.batch != "never" and self.batch_endpoint is not None:
            batch_url = self.batch_endpoint.replace("{region}", "region")
            batch_http = batch_url.startswith("http://")
            if batch_http and not is_loopback_url(batch_url):
                yield "batch_endpoint", "plain http is only allowed to a loopback address (the simulator)"
            if self.credential == "none" and not (batch_http and is_loopback_url(batch_url)):
                yield "batch_endpoint", "with credential `none` it must be a loopback http URL (the simulator)"
        if self.batch == "always" and self.metrics_endpoint() is None:
            yield "batch_endpoint", "required with batch `always` when arm_endpoint is not a known cloud"
        if self.shard is not None and self.shards is not None and int(self.shard.split("/")[1]) != self.shards:
            yield "shards", f"contradicts shard {self.shard}; give one of them"
        if not self.enabled:
            return
        if self.cluster.name is None and not self.resources:
            yield "cluster", "required: give `cluster` (resource_group + name) or `resources` when azure is enabled"
        if self.cluster.name is not None and self.subscription_id is None:
            yield "subscription_id", "required with `cluster`"
