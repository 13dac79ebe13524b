"""Credentials and SDK clients built from the ``azure`` config section, plus the request instrumentation.

The clients share one credential: ``MonitorManagementClient`` (Metrics List, per resource), one
``azure.monitor.querymetrics`` ``MetricsClient`` per region (``metrics:getBatch`` on the regional data plane), and a
bare ``AsyncARMPipelineClient`` for the handful of ARM GETs discovery needs (managed cluster, load balancers, NAT
gateways, subnets, public IP prefixes). azure-mgmt-network and azure-mgmt-containerservice are not used: they
are tens of megabytes for four GETs whose few fields we read by hand.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    AsyncHTTPPolicy,
    AsyncRetryPolicy,
    ContentDecodePolicy,
    HeadersPolicy,
    RequestIdPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest
from azure.mgmt.core import AsyncARMPipelineClient
from azure.mgmt.core.policies import AsyncARMChallengeAuthenticationPolicy
from azure.monitor.querymetrics.aio import MetricsClient
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry

from snat_exporter import __version__
from snat_exporter.collectors.azure import metrics as m
from snat_exporter.collectors.azure.config import AzureConfig, is_loopback_url
from snat_exporter.collectors.azure.errors import CredentialSetupError, retry_after_seconds

if TYPE_CHECKING:
    from azure.mgmt.monitor.aio import MonitorManagementClient

log = logging.getLogger("snat_exporter.azure")

USER_AGENT = f"snat-exporter/{__version__}"

# The operation a request belongs to, set by the caller around each SDK call and read by the per-try policy.
OPERATION: contextvars.ContextVar[str] = contextvars.ContextVar("azure_operation", default="other")

# ARM's token audience differs from its endpoint in the sovereign clouds.
_SCOPES = {
    "https://management.azure.com": "https://management.azure.com/.default",
    "https://management.usgovcloudapi.net": "https://management.core.usgovcloudapi.net/.default",
    "https://management.chinacloudapi.cn": "https://management.core.chinacloudapi.cn/.default",
}

_RATELIMIT_PREFIX = "x-ms-ratelimit-remaining-"
# 429 is ARM's throttling answer; 529 (ServerBusy) is the metrics data plane's.
THROTTLED_STATUSES = ("429", "529")
_WORKLOAD_IDENTITY_ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE")


def credential_scope(arm_endpoint: str, audience: str | None = None) -> str:
    """The token scope for ARM: ``audience`` (``azure.arm_audience``: a custom cloud, or a proxy whose audience is
    not its URL) + ``/.default``, else the known cloud's audience, else the endpoint's."""
    if audience is not None:
        audience = audience.rstrip("/")
        return audience if audience.endswith("/.default") else audience + "/.default"
    return _SCOPES.get(arm_endpoint.rstrip("/"), arm_endpoint.rstrip("/") + "/.default")


class NoCredential:
    """``credential: none``: the loopback simulator wants no token, and no token must ever be fetched."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError("credential `none` cannot authenticate (loopback simulator only)")

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> NoCredential:
        return self

    async def __aexit__(self, *args: Any) -> None:
        pass


class _NoAuthentication(SansIOHTTPPolicy[Any, Any]):
    """Stands where the bearer-token policy would: sends no Authorization header."""


def make_credential(config: AzureConfig) -> AsyncTokenCredential:
    """The credential ``azure.credential`` names. Raises CredentialSetupError with a message safe to log."""
    kind = config.credential
    if kind == "none":
        return NoCredential()  # never asked: no bearer policy is installed
    try:
        from azure.identity import aio as identity

        if kind == "default":
            kwargs: dict[str, Any] = {}
            if config.managed_identity_client_id:
                kwargs["managed_identity_client_id"] = config.managed_identity_client_id
            return identity.DefaultAzureCredential(**kwargs)
        if kind == "workload_identity":
            missing = [v for v in _WORKLOAD_IDENTITY_ENV if not os.environ.get(v)]
            if missing:
                raise CredentialSetupError(
                    f"cannot create the workload_identity credential: {', '.join(missing)} not set (the AKS "
                    "workload identity webhook injects them into pods labelled azure.workload.identity/use=true)"
                )
            return identity.WorkloadIdentityCredential()
        if kind == "managed_identity":
            return identity.ManagedIdentityCredential(client_id=config.managed_identity_client_id)
        if kind == "environment":
            return identity.EnvironmentCredential()
    except (ValueError, TypeError, ImportError) as e:
        # azure-identity names the missing environment variables; it never puts a secret in this message.
        raise CredentialSetupError(f"cannot create the {kind} credential: {e}") from None
    raise CredentialSetupError(f"unknown credential kind {kind!r}")


class RequestMetrics:
    """The live self-metrics of the Azure HTTP traffic."""

    def __init__(self, registry: CollectorRegistry):
        self.requests: Counter = m.REQUESTS.counter(registry)
        self.duration: Histogram = m.REQUEST_DURATION.histogram(registry)
        self.throttled: Counter = m.THROTTLED.counter(registry)
        self.ratelimit: Gauge = m.RATELIMIT_REMAINING.gauge(registry)

    def record(self, operation: str, status: str, seconds: float, headers: Mapping[str, str] | None) -> None:
        self.requests.labels(operation, status).inc()
        self.duration.labels(operation).observe(seconds)
        if status in THROTTLED_STATUSES:
            self.throttled.labels(operation).inc()
        for name, value in (headers or {}).items():
            lname = name.lower()
            if lname.startswith(_RATELIMIT_PREFIX):
                try:
                    self.ratelimit.labels(lname[len(_RATELIMIT_PREFIX) :]).set(float(value))
                except ValueError:
                    pass


class _AttemptPolicy(AsyncHTTPPolicy[Any, Any]):
    """Sits after the retry policy, so it sees every try: status, duration, rate-limit headers."""

    def __init__(self, sink: RequestMetrics):
        super().__init__()
        self.sink = sink

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        operation = OPERATION.get()
        started = time.monotonic()
        status = "error"
        headers: Mapping[str, str] | None = None
        try:
            response = await self.next.send(request)
            status = str(response.http_response.status_code)
            headers = response.http_response.headers
            return response
        except (ServiceRequestTimeoutError, ServiceResponseTimeoutError, TimeoutError):
            status = "timeout"
            raise
        except ClientAuthenticationError:
            status = "auth"
            raise
        except (ServiceRequestError, ServiceResponseError):
            status = "unreachable"
            raise
        except BaseException as e:  # CancelledError: our own per-request deadline
            if not isinstance(e, Exception):
                status = "timeout"
            raise
        finally:
            self.sink.record(operation, status, time.monotonic() - started, headers)


class BoundedRetryPolicy(AsyncRetryPolicy):
    """The one retry path of every Azure call: azure-core's retry, except that

    - a Retry-After longer than ``max_wait`` is not slept on inside the cycle: the error surfaces at once and the
      runner waits instead (so one cycle cannot block for minutes);
    - with ``post_is_read``, a POST is retried like a GET: getBatch is a read, and azure-core retries a POST only
      on 500/503/504, not on 408, 429, 502 or the data plane's 529 "server busy" without a Retry-After;
    - Retry-After is read by ``retry_after_seconds``, the parser ``error_reason`` uses for the runner.
    """

    def __init__(self, *, max_wait: float, post_is_read: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_wait = max_wait
        if post_is_read:
            self._method_whitelist = self._method_whitelist | {"POST"}

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        return retry_after_seconds(response.http_response.headers)

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self.max_wait:
            return False
        return super().is_retry(settings, response)


class AzureClients:
    """The credential and both clients; ``call_options`` go on every SDK call."""

    def __init__(self, config: AzureConfig, request_metrics: RequestMetrics):
        self.config = config
        self.request_metrics = request_metrics
        self.credential = make_credential(config)
        # Bearer tokens are refused over plain http; the only http endpoint we accept is a loopback simulator.
        # With credential `none` there is no bearer policy to consume the option, and the transport rejects it.
        self._relax_https = (
            config.arm_endpoint.startswith("http://")
            and is_loopback_url(config.arm_endpoint)
            and config.credential != "none"
        )
        scope = credential_scope(config.arm_endpoint, config.arm_audience)
        self._batch: dict[str, MetricsClient] = {}
        common: dict[str, Any] = {
            "retry_policy": self._retry_policy(),
            "per_retry_policies": [_AttemptPolicy(self.request_metrics)],
            "user_agent": USER_AGENT,
            "connection_timeout": config.timeout,
            "read_timeout": config.timeout,
        }
        if config.credential == "none":
            common["authentication_policy"] = _NoAuthentication()
        self._monitor: MonitorManagementClient | None = None
        self._monitor_args: dict[str, Any] = {"credential_scopes": [scope], **common}
        auth: Any = (
            _NoAuthentication()
            if config.credential == "none"
            else AsyncARMChallengeAuthenticationPolicy(self.credential, scope)
        )
        self.arm: AsyncARMPipelineClient[Any, Any] = AsyncARMPipelineClient(
            base_url=config.arm_endpoint,
            policies=[
                RequestIdPolicy(),
                HeadersPolicy(),
                UserAgentPolicy(user_agent=USER_AGENT),
                ContentDecodePolicy(),
                self._retry_policy(),
                _AttemptPolicy(self.request_metrics),
                auth,
            ],
            connection_timeout=config.timeout,
            read_timeout=config.timeout,
        )

    def _retry_policy(self, *, post_is_read: bool = False) -> BoundedRetryPolicy:
        return BoundedRetryPolicy(
            max_wait=max(1.0, self.config.timeout / 3),
            post_is_read=post_is_read,
            retry_total=self.config.retries,
            retry_backoff_factor=0.5,
            retry_backoff_max=min(8.0, self.config.timeout / 4),
            timeout=self.config.timeout,
        )

    @property
    def call_options(self) -> dict[str, Any]:
        return {"enforce_https": False} if self._relax_https else {}

    def batch_endpoint(self, region: str) -> str | None:
        template = self.config.metrics_endpoint()
        return None if template is None else template.replace("{region}", region)

    def batch_call_options(self, endpoint: str) -> dict[str, Any]:
        relax = endpoint.startswith("http://") and is_loopback_url(endpoint) and self.config.credential != "none"
        return {"enforce_https": False} if relax else {}

    def batch_client(self, endpoint: str) -> MetricsClient:
        """The getBatch client of one regional endpoint (created on first use, kept for the process)."""
        client = self._batch.get(endpoint)
        if client is None:
            kwargs: dict[str, Any] = {
                "audience": self.config.metrics_audience(),
                "retry_policy": self._retry_policy(post_is_read=True),
                "per_retry_policies": [_AttemptPolicy(self.request_metrics)],
                "user_agent": USER_AGENT,
                "connection_timeout": self.config.timeout,
                "read_timeout": self.config.timeout,
            }
            if self.config.credential == "none":
                kwargs["authentication_policy"] = _NoAuthentication()
            client = self._batch[endpoint] = MetricsClient(endpoint, self.credential, **kwargs)
        return client

    async def get_json(self, operation: str, path: str, api_version: str) -> Any:
        """One ARM GET (``path`` from the root, or a full nextLink URL) -> the decoded JSON body."""
        token = OPERATION.set(operation)
        try:
            url = path if path.startswith("http") else self.config.arm_endpoint + path
            params = {} if "api-version=" in url else {"api-version": api_version}
            request = HttpRequest("GET", url, params=params, headers={"Accept": "application/json"})
            response = await self.arm.send_request(request, **self.call_options)
            await response.read()
            if response.status_code != 200:
                raise HttpResponseError(response=response)
            try:
                return response.json()
            except ValueError as e:
                raise DecodeError(f"{operation}: body is not JSON", response=response) from e
        finally:
            OPERATION.reset(token)

    @property
    def monitor(self) -> MonitorManagementClient:
        """The Metrics List client, made on first use: with getBatch working it is never needed, and its SDK (its
        models and their serializer) costs about 5 MB of memory."""
        if self._monitor is None:
            from azure.mgmt.monitor import aio as monitor_sdk

            self._monitor = monitor_sdk.MonitorManagementClient(
                self.credential,
                self.config.subscription_id or "00000000-0000-0000-0000-000000000000",
                base_url=self.config.arm_endpoint,
                **self._monitor_args,
            )
        return self._monitor

    async def close(self) -> None:
        batch = [c.close for c in self._batch.values()]
        self._batch.clear()
        monitor = [self._monitor.close] if self._monitor is not None else []
        for closer in (*monitor, self.arm.close, *batch, self.credential.close):
            try:
                await closer()
            except Exception:  # shutdown goes on
                log.debug("closing an Azure client failed", exc_info=True)
