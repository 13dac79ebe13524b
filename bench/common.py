"""What the Azure benchmarks share: a generated estate, the simulator and the exporter each in its own process,
and reading figures back from the exporter's own /metrics and /proc (nothing here is timed by sleeping: every
wait polls a condition with a deadline)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

SUB = "7d4b2c1a-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
PY = sys.executable


def estate(load_balancers: int, nat_gateways: int, *, backends: int = 10, latency: float = 0.0) -> dict[str, Any]:
    """A cluster (its `kubernetes` LB counts as one of ``load_balancers``) plus more LBs of ``backends`` backends
    and NAT gateways, every answer delayed by ``latency`` seconds. ARM throttling stays on (250 reads, 25/s)."""
    data: dict[str, Any] = {
        "description": f"benchmark estate: {load_balancers} load balancers x {backends} backends, {nat_gateways} NAT gateways",
        "subscription_id": SUB,
        "region": "westeurope",
        "cluster": {
            "resource_group": "rg-bench",
            "name": "aks-bench",
            "agent_pools": [{"name": "pool", "count": backends}],
        },
        "load_balancers": [{"name": "kubernetes"}],
        "nat_gateways": [],
    }
    if load_balancers > 1:
        data["load_balancers"].append({"name": "lb-{i}", "count": load_balancers - 1, "backends": backends})
    if nat_gateways:
        data["nat_gateways"].append({"name": "nat-{i}", "count": nat_gateways, "public_ips": 2})
    if latency:
        data["faults"] = [{"kind": "latency", "seconds": latency}]
    return data


def explicit_ids(data: dict[str, Any]) -> list[str]:
    node_rg = f"MC_{data['cluster']['resource_group']}_{data['cluster']['name']}_{data['region']}"
    base = f"/subscriptions/{SUB}/resourceGroups/{node_rg}/providers/Microsoft.Network"
    out = []
    for group in data["load_balancers"][1:]:
        out += [f"{base}/loadBalancers/lb-{i}" for i in range(group["count"])]
    for group in data["nat_gateways"]:
        out += [f"{base}/natGateways/nat-{i}" for i in range(group["count"])]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)  # polling a condition with a deadline, not synchronising on time


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    url: str
    headers: dict[str, str] = field(default_factory=dict)  # e.g. the bearer token with auth: kubernetes
    cafile: str | None = None  # the CA of an https exporter

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return rss / 1024, hwm / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def simulator(data: dict[str, Any]) -> Iterator[Proc]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estate.yaml"
        path.write_text(yaml.safe_dump(data))
        port = free_port()
        popen = subprocess.Popen(
            [PY, "-m", "snat_exporter.simulator", "--scenario", str(path), "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        proc = Proc(popen, f"http://127.0.0.1:{port}")
        try:
            wait_for(
                "the simulator",
                lambda: _get(proc.url + f"/subscriptions/{SUB}/resourceGroups?api-version=2024-05-01", ok=(200, 404)),
                60,
            )
            yield proc
        finally:
            _stop(popen)


@contextlib.contextmanager
def exporter(data: dict[str, Any], sim_url: str, *, front: Front | None = None, **azure: Any) -> Iterator[Proc]:
    """``front``: the HTTP front door (auth: kubernetes, TLS) to run behind; plain http without auth by default."""
    config: dict[str, Any] = {
        "log_level": "warning",
        "azure": {
            "enabled": True,
            "arm_endpoint": sim_url,
            "credential": "none",
            "subscription_id": SUB,
            "cluster": {"resource_group": data["cluster"]["resource_group"], "name": data["cluster"]["name"]},
            "resources": explicit_ids(data),
            "interval": "10s",
            **azure,
        },
        **(front.config if front is not None else {}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exporter.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        popen = subprocess.Popen(
            [PY, "-m", "snat_exporter", "serve", "--config", str(path), "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        scheme = "https" if front is not None and front.cafile else "http"
        proc = Proc(
            popen,
            f"{scheme}://127.0.0.1:{port}",
            dict(front.headers) if front is not None else {},
            front.cafile if front is not None else None,
        )
        try:
            wait_for("the exporter", lambda: _get(proc.url + "/readyz", ok=(200,), cafile=proc.cafile), 60)
            yield proc
        finally:
            _stop(popen)


def _get(
    url: str, ok: tuple[int, ...], headers: dict[str, str] | None = None, cafile: str | None = None
) -> bytes | None:
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    if context is not None:
        context.check_hostname = False  # the certificate names the exporter, the bench reaches it by 127.0.0.1
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=30, context=context
        ) as resp:
            return resp.read() if resp.status in ok else None
    except urllib.error.HTTPError as e:
        return b"-" if e.code in ok else None


def _stop(popen: subprocess.Popen[str]) -> None:
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)


def scrape(
    url: str, headers: dict[str, str] | None = None, cafile: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = _get(url + "/metrics", ok=(200,), headers=headers, cafile=cafile) or b""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, x) in ls for k, x in labels.items()))


@dataclass
class Cycle:
    seconds: float  # the runner's own duration of the cycle
    calls: float  # metric query requests (each retry counted)
    cpu: float  # exporter CPU seconds over the cycle
    series: int  # series in /metrics after it


def measure_cycles(proc: Proc, cycles: int, timeout: float) -> list[Cycle]:
    """Waits for the first successful cycle (start-up and discovery), then measures the next ``cycles``."""
    ops = ("metrics_list", "metrics_batch")

    def done(after: float) -> dict[Any, float] | None:
        s = scrape(proc.url, proc.headers, proc.cafile)
        last = value(s, "snat_exporter_collector_last_success_timestamp_seconds", collector="azure")
        return s if last > after else None

    samples = wait_for("the first cycle", lambda: done(0.0), timeout)
    out = []
    for _ in range(cycles):
        last = value(samples, "snat_exporter_collector_last_success_timestamp_seconds", collector="azure")
        calls0 = sum(value(samples, "snat_exporter_azure_requests_total", operation=o) for o in ops)
        cpu0 = proc.cpu_seconds()
        samples = wait_for("the next cycle", functools.partial(done, last), timeout)
        out.append(
            Cycle(
                seconds=value(samples, "snat_exporter_collector_duration_seconds", collector="azure"),
                calls=sum(value(samples, "snat_exporter_azure_requests_total", operation=o) for o in ops) - calls0,
                cpu=proc.cpu_seconds() - cpu0,
                series=len(samples),
            )
        )
    return out


# ------------------------------------------------------------------------------------------ the front door
@dataclass
class Front:
    """Settings of the exporter's HTTP front door, and what a scraper sends to get through it."""

    config: dict[str, Any]
    headers: dict[str, str]
    cafile: str | None = None


BENCH_TOKEN = "bench-prometheus-token"


@contextlib.contextmanager
def kube_auth(tls: bool = False) -> Iterator[tuple[Front, Any]]:
    """The fake Kubernetes API server (in a thread of this process) knowing one token allowed to get /metrics, and
    the front door settings that check it (with ``tls``, https from a throw-away CA too). Yields (front, server):
    ``server.auth.reviews`` counts the reviews the exporter sent."""
    import asyncio
    import threading

    from snat_exporter.simulator.kubeapi import KubeApiServer
    from snat_exporter.simulator.kubeauth import User
    from snat_exporter.simulator.kubeobjects import write_kubeconfig

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kube-api", daemon=True)
    thread.start()
    server = KubeApiServer()
    user = User.service_account("monitoring", "prometheus")
    server.auth.add_token(BENCH_TOKEN, user)
    server.auth.grant(user.username)
    try:
        url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        with tempfile.TemporaryDirectory() as tmp:
            config: dict[str, Any] = {
                "auth": "kubernetes",
                "kubernetes": {"kubeconfig": str(write_kubeconfig(Path(tmp) / "kubeconfig", url))},
            }
            cafile = None
            if tls:
                cafile = _throwaway_tls(Path(tmp))
                config["web_config_file"] = str(Path(tmp) / "web.yml")
            yield Front(config, {"Authorization": f"Bearer {BENCH_TOKEN}"}, cafile), server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _throwaway_tls(folder: Path) -> str:
    """A self-signed certificate for 127.0.0.1 and the web config that serves it; returns the CA file to trust."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snat-exporter-bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "web.yml").write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    return str(folder / "tls.crt")
