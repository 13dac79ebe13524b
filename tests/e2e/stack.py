"""The end-to-end stack: real Prometheus and Alertmanager binaries, a webhook standing in for the pager, and
exporters running the simulator's scenarios, all on loopback.

Time: the simulators and exporters share a FakeClock. One "Azure minute" is ``clock.advance(60)`` plus one
collector run; Prometheus scrapes and evaluates in wall time every second. The rules are copied with every
``for:`` shortened to FOR_SHORT (the documented mechanism, docs/alerts.md); promtool tests keep the real ones.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from tests.conftest import ROOT, FakeClock

FOR_SHORT = "3s"
DEADLINE = 60.0


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install the Debian packages prometheus and prometheus-alertmanager")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def shorten_for(text: str, duration: str = FOR_SHORT) -> str:
    """Every alert's `for:` becomes `duration`; expressions and windows are untouched."""
    return re.sub(r"^(\s+for:\s*)\S+\s*$", rf"\g<1>{duration}", text, flags=re.M)


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], deadline: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out after {deadline:.0f}s waiting for {what} (last: {last!r})")


class Process:
    def __init__(self, name: str, argv: list[str], log: Path):
        self.name, self.argv, self.log = name, argv, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        out = self.log.open("wb")
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdout=out, stderr=out)
        out.close()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Webhook:
    """The pager: records every alert Alertmanager delivers."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.alerts.extend(body["alerts"])
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["labels"]["alertname"] == alertname and a["status"] == "firing"]


@dataclass
class Target:
    exporter: Exporter
    instance: str  # host:port as Prometheus labels it


class Stack:
    """Prometheus (rules loaded, 1 s scrape and evaluation) + Alertmanager (webhook receiver) for some exporters."""

    def __init__(self, tmp: Path, session: aiohttp.ClientSession):
        self.tmp = tmp
        self.session = session
        self.webhook = Webhook()
        self.prom_url = ""
        self.am_url = ""
        self.processes: list[Process] = []

    def _rules(self) -> list[str]:
        out = []
        for name in ("recording_rules.yml", "alerts.yml"):
            path = self.tmp / name
            path.write_text(shorten_for((ROOT / "alerts" / name).read_text()))
            out.append(str(path))
        return out

    async def start(
        self,
        targets: list[str],
        node_targets: list[str] | None = None,
        clusters: dict[str, str] | None = None,
        node_scrape: dict[str, Any] | None = None,
    ) -> None:
        """Scrape ``targets`` (cluster exporters) as job snat-exporter and ``node_targets`` (node agents) as job
        snat-exporter-node, the jobs the generated rules select by default. Each target gets the
        `cluster` label ``clusters[target]`` (default "e2e"). ``node_scrape``: more settings of the node agents' job
        (scheme, authorization, tls_config)."""
        clusters = clusters or {}
        await self.webhook.start()
        am_port, prom_port = free_port(), free_port()
        am_config = {
            "route": {
                "receiver": "pager",
                "group_by": ["alertname", "node", "nat_gateway"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "pager", "webhook_configs": [{"url": self.webhook.url, "send_resolved": False}]}],
        }
        (self.tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
        prom_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": self._rules(),
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [
                {
                    "job_name": job,
                    # what the dashboards' Cluster variable lists (relabelling, as docs/dashboards.md says)
                    "static_configs": [{"targets": [h], "labels": {"cluster": clusters.get(h, "e2e")}} for h in hosts],
                    **extra,
                }
                for job, hosts, extra in (
                    ("snat-exporter", targets, {}),
                    ("snat-exporter-node", node_targets or [], node_scrape or {}),
                )
                if hosts
            ],
        }
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        self.processes = [
            Process(
                "alertmanager",
                [
                    binary("prometheus-alertmanager"),
                    f"--config.file={self.tmp / 'alertmanager.yml'}",
                    f"--storage.path={self.tmp / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                self.tmp / "alertmanager.log",
            ),
            Process(
                "prometheus",
                [
                    binary("prometheus"),
                    f"--config.file={self.tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.tmp / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                self.tmp / "prometheus.log",
            ),
        ]
        self.am_url, self.prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
        for process, url in zip(self.processes, (self.am_url, self.prom_url), strict=True):
            await process.start()
            await wait_for(f"{process.name} ready", functools.partial(self._ready, url, process), 30)

    async def _ready(self, url: str, process: Process) -> bool:
        assert process.proc is not None and process.proc.returncode is None, f"{process.name} exited:\n{process.tail()}"
        try:
            async with self.session.get(url + "/-/ready") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def stop(self) -> None:
        for process in reversed(self.processes):
            await process.stop()
        await self.webhook.stop()

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with self.session.get(self.prom_url + "/api/v1/query", params={"query": expr}) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def series(self, selector: str) -> list[dict[str, str]]:
        params = {"match[]": selector, "start": str(time.time() - 3600)}
        async with self.session.get(self.prom_url + "/api/v1/series", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"{selector}: {body}"
        result: list[dict[str, str]] = body["data"]
        return result

    async def rules_evaluated_after(self, t: float) -> bool:
        async with self.session.get(self.prom_url + "/api/v1/rules") as resp:
            groups = (await resp.json())["data"]["groups"]
        for group in groups:
            last = group.get("lastEvaluation", "")
            if not last or last.startswith("0001"):
                return False
            stamp = time.mktime(time.strptime(last[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            if stamp < t:
                return False
            for rule in group["rules"]:
                assert rule["health"] != "err", f"{rule['name']}: {rule.get('lastError')}"
        return True

    async def scraped(self, target: Target) -> bool:
        """Prometheus holds the result of the exporter's latest Azure run."""
        want = target.exporter.runners["azure"].state.last_success_at
        found = await self.query(
            f'snat_exporter_collector_last_success_timestamp_seconds{{collector="azure", instance="{target.instance}"}}'
        )
        return bool(found) and want is not None and float(found[0]["value"][1]) == want


async def start_exporter(tmp: Path, clock: FakeClock, scenario_name: str, *, kube: bool) -> tuple[Target, list[Any]]:
    """An exporter on the scenario's simulator (and on a Kubernetes API server with its nodes, for the node label).
    Returns the target and what to stop afterwards."""
    from snat_exporter.simulator import Simulator, exporter_settings, load_scenario
    from snat_exporter.simulator.kubeapi import KubeApiServer
    from snat_exporter.simulator.kubeobjects import scenario_nodes, write_kubeconfig

    scenario = load_scenario(scenario_name)
    sim = Simulator(scenario, clock=clock)
    sim_url = await sim.start("127.0.0.1", 0)
    stoppable: list[Any] = [sim]
    overrides = {**exporter_settings(scenario, sim_url), "azure.timeout": "5s"}
    if kube:
        api = KubeApiServer()
        api.add(*scenario_nodes(scenario_name))
        kube_url = await api.start("127.0.0.1", 0)
        stoppable.append(api)
        directory = tmp / f"kube-{scenario_name}"
        directory.mkdir()
        overrides.update(
            {
                "kubernetes.enabled": "true",
                "kubernetes.kubeconfig": str(write_kubeconfig(directory / "kubeconfig", kube_url)),
            }
        )
    exporter = Exporter(load_config(None, environ={}, overrides=overrides), clock=clock)
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    stoppable.insert(0, exporter)
    if kube:
        assert await exporter.runners["kubernetes"].run_once(), exporter.runners["kubernetes"].state.last_error
    return Target(exporter, url.removeprefix("http://")), stoppable


async def azure_minute(clock: FakeClock, stack: Stack, targets: list[Target]) -> None:
    """One Azure minute passes: every exporter collects it and Prometheus scrapes the result."""
    clock.advance(60)
    for target in targets:
        assert await target.exporter.runners["azure"].run_once(), target.exporter.runners["azure"].state.last_error
    for target in targets:
        await wait_for(f"Prometheus to scrape {target.instance}", functools.partial(stack.scraped, target), 15)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query of every panel of the committed dashboards."""
    out = []
    for path in sorted((ROOT / "dashboards" / "out").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, label_values query) for every query variable."""
    out = []
    for path in sorted((ROOT / "dashboards" / "out").glob("*.json")):
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "query":
                out.append((path.name, var["name"], var["query"]["query"]))
    return out


def with_all_selected(expr: str) -> str:
    """What Grafana sends with every variable at "All" (allValue `.*`)."""
    return re.sub(r"\$\{?(cluster|node|load_balancer|nat_gateway)\}?", ".*", expr)
