"""The API client: from a kubeconfig file or the pod's service account, into its own Configuration object.

Never the client library's global default configuration: the exporter must not change what other code in the
process (or a test) talks to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from kubernetes.client import ApiClient, Configuration
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)
from kubernetes.config.kube_config import load_kube_config

from snat_exporter.collectors.kube.config import KubernetesConfig


def client_configuration(
    config: KubernetesConfig,
    *,
    environ: Mapping[str, str] = os.environ,
    token_file: str = SERVICE_TOKEN_FILENAME,
    ca_file: str = SERVICE_CERT_FILENAME,
) -> Configuration:
    """Raises kubernetes.config.ConfigException (or OSError) when neither source is usable."""
    conf = Configuration()
    if config.kubeconfig:
        # persist_config=False: a token refreshed by an auth plugin is not written back into the user's file.
        load_kube_config(config_file=config.kubeconfig, client_configuration=conf, persist_config=False)
    else:
        # The service account token is re-read from disk as it rotates (projected tokens expire after an hour).
        InClusterConfigLoader(token_file, ca_file, try_refresh_token=True, environ=environ).load_and_set(conf)
    # No urllib3 retries: the watch loop retries with back-off and jitter, and logs once per fault, where urllib3
    # would retry at once and log a warning per attempt.
    conf.retries = 0
    return conf


def api_client(config: KubernetesConfig, *, environ: Mapping[str, str] = os.environ) -> ApiClient:
    return ApiClient(client_configuration(config, environ=environ))
