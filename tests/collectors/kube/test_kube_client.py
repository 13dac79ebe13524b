"""Client configuration (kubeconfig, in-cluster, neither), the exporter wiring, and the fake server's wire shape
as the official client's own models and Watch read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client import Configuration
from prometheus_client import CollectorRegistry

from snat_exporter.collectors.base import CollectError, CollectorContext
from snat_exporter.collectors.kube.client import client_configuration
from snat_exporter.collectors.kube.collector import KubeCollector
from snat_exporter.config import load_config
from snat_exporter.identity import NoIdentity
from snat_exporter.server import Exporter
from snat_exporter.settings import ConfigError
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import node_object, pod_object, write_kubeconfig
from tests.collectors.kube.conftest import must


def test_in_cluster_config_uses_the_service_account_in_its_own_configuration(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOi.test")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    before = Configuration.get_default_copy().host
    config = load_config(None, environ={}, overrides={"kubernetes.enabled": "true"}).kubernetes
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    conf = client_configuration(config, environ=environ, token_file=str(token), ca_file=str(ca))
    assert conf.host == "https://10.0.0.1:443"
    assert conf.ssl_ca_cert == str(ca)
    assert conf.api_key["BearerToken"] == "bearer eyJhbGciOi.test"
    assert Configuration.get_default_copy().host == before, "the library's global default stays untouched"


def test_kubeconfig_file_is_read_into_its_own_configuration(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:6443")
    config = load_config(None, environ={}, overrides={"kubernetes.kubeconfig": str(path)}).kubernetes
    conf = client_configuration(config)
    assert conf.host == "http://127.0.0.1:6443"
    assert conf.api_key["BearerToken"] == "Bearer not-a-secret"
    assert Configuration.get_default_copy().host != conf.host


async def test_no_usable_client_config_fails_every_run_with_reason_config(tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides={"kubernetes.enabled": "true"}).kubernetes
    context = CollectorContext(CollectorRegistry(), NoIdentity())
    collector = KubeCollector(config, context, environ={})  # no service account env, no kubeconfig
    await collector.start()
    with pytest.raises(CollectError) as err:
        await collector.collect()
    assert err.value.reason == "config"
    await collector.close()


async def test_exporter_hands_the_kube_identity_to_collectors(tmp_path: Path, kubeapi: KubeApiServer) -> None:
    kubeapi.add(node_object("n1", "10.224.0.4", pool="system"))
    path = write_kubeconfig(tmp_path / "kubeconfig", kubeapi.url)
    config = load_config(
        None, environ={}, overrides={"kubernetes.enabled": "true", "kubernetes.kubeconfig": str(path)}
    )  # fmt: skip
    exporter = Exporter(config)
    assert [c.name for c in exporter.collectors] == ["kubernetes"]
    await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        assert await exporter.runners["kubernetes"].run_once()
        assert must(exporter.collection.identity.node_by_ip("10.224.0.4")).name == "n1"
    finally:
        await exporter.stop()


async def test_fake_server_objects_deserialize_into_the_official_models(kubeapi: KubeApiServer) -> None:
    import asyncio

    kubeapi.add(
        node_object("n1", "10.224.0.4", pool="system", zone="eastus-1"),
        pod_object("shop", "web-1", "10.244.0.3", node="n1", owner=("ReplicaSet", "web-5d"),
                   labels={"pod-template-hash": "5d"}),
    )  # fmt: skip
    api = k8s.ApiClient(Configuration(host=kubeapi.url))

    def read() -> tuple[Any, Any, list[tuple[str, str]]]:
        v1 = k8s.CoreV1Api(api)
        nodes = v1.list_node()
        pods = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
        events = [
            (e["type"], e["object"].metadata.name)
            for e in k8s_watch.Watch().stream(v1.list_node, resource_version="1000", timeout_seconds=1)
        ]
        return nodes, pods, events

    nodes, pods, events = await asyncio.to_thread(read)
    api.close()
    assert nodes.kind == "NodeList" and nodes.metadata.resource_version == str(kubeapi.resource_version)
    assert nodes.items[0].status.addresses[1].type == "InternalIP"
    assert nodes.items[0].metadata.labels["kubernetes.azure.com/agentpool"] == "system"
    pod = pods.items[0]
    assert pod.status.pod_ips[0].ip == "10.244.0.3" and pod.spec.node_name == "n1"
    assert pod.metadata.owner_references[0].controller is True
    assert events == [("ADDED", "n1")]


def test_enabled_with_nothing_to_watch_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            None,
            environ={},
            overrides={"kubernetes.enabled": "true", "kubernetes.nodes": "false", "kubernetes.pods": "false"},
        )
    assert err.value.problems[0][0] == "kubernetes.nodes"
