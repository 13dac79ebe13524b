"""A small Kubernetes API server for tests and the demo: list and watch of nodes and pods, in the real wire shape.

It speaks what a reflector needs: paged lists (``limit`` / ``continue``) with a resourceVersion, and watches
(``?watch=true``) that stream newline-delimited ADDED / MODIFIED / DELETED / BOOKMARK events from a given
resourceVersion, honour ``allowWatchBookmarks``, ``timeoutSeconds``, ``fieldSelector`` (``spec.nodeName``,
``metadata.name``, ``metadata.namespace``) and equality ``labelSelector``, and answer a resourceVersion older than
the kept history with a 410 ERROR event, as kube-apiserver does. Tests drive it from Python: change objects (open
watches get the events), drop every open watch, compact the history, make requests fail with a status for a
while, and count requests.

Run alone: ``python -m snat_exporter.simulator.kubeapi --port 8001 --scenario steady`` (nodes of an Azure scenario).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from aiohttp import web

from snat_exporter.simulator.kubeauth import KubeAuth

RESOURCES = {"nodes": ("Node", False), "pods": ("Pod", True)}  # resource -> (kind, namespaced)
DEFAULT_WATCH_TIMEOUT = 1800.0
_DROP = object()


class ScenarioNode(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def pool(self) -> str: ...

    @property
    def zone(self) -> str: ...


# ------------------------------------------------------------------------------------------ object builders


def node_object(
    name: str,
    ip: str | Iterable[str],
    *,
    pool: str = "",
    zone: str = "",
    pool_label: str = "kubernetes.azure.com/agentpool",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Node as the API serves it (the fields a reader may look at; status trimmed to addresses)."""
    ips = [ip] if isinstance(ip, str) else list(ip)
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if pool:
        all_labels[pool_label] = pool
    if zone:
        all_labels["topology.kubernetes.io/zone"] = zone
        all_labels["topology.kubernetes.io/region"] = zone.rsplit("-", 1)[0]
    all_labels.update(labels or {})
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": all_labels},
        "spec": {"providerID": f"azure:///subscriptions/0/resourceGroups/mc/virtualMachineScaleSets/{pool}/0"},
        "status": {
            "addresses": [{"type": "Hostname", "address": name}] + [{"type": "InternalIP", "address": a} for a in ips],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod_object(
    namespace: str,
    name: str,
    ip: str | Iterable[str] | None,
    *,
    node: str = "",
    host_ip: str | None = None,
    owner: tuple[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    host_network: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    """A Pod as the API serves it. ``owner`` is the controller (kind, name), e.g. ("ReplicaSet", "web-5d8f7c9b4")."""
    ips = [] if ip is None else ([ip] if isinstance(ip, str) else list(ip))
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "labels": dict(labels or {}),
    }
    if owner is not None:
        kind, owner_name = owner
        api = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1"}
        meta["ownerReferences"] = [
            {
                "apiVersion": api.get(kind, "v1"),
                "kind": kind,
                "name": owner_name,
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    status: dict[str, Any] = {"phase": phase}
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": a} for a in ips]
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig file that points the real client at this fake server (any token is accepted)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sim", "cluster": {"server": url}}],
                "users": [{"name": "exporter", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "exporter"}}],
                "current-context": "sim",
            }
        )
    )
    return path


def nodes_from_scenario(nodes: Iterable[ScenarioNode]) -> list[dict[str, Any]]:
    """Node objects for the nodes of an Azure simulator scenario (``load_scenario(name).nodes``)."""
    return [node_object(n.name, n.ip, pool=n.pool, zone=n.zone) for n in nodes]


def scenario_nodes(name: str) -> list[dict[str, Any]]:
    """Node objects for a built-in scenario of the Azure simulator, by name (``steady``, ...)."""
    from snat_exporter.simulator.scenario_load import load_scenario

    return nodes_from_scenario(load_scenario(name).nodes)


# ------------------------------------------------------------------------------------------------ selectors


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def _parse_selector(text: str | None) -> list[tuple[str, str, bool]]:
    """'a=b,c!=d' -> [(a, b, True), (c, d, False)]; only equality, as the field selectors we serve need."""
    out = []
    for term in filter(None, (t.strip() for t in (text or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            out.append((key.strip(), value.strip(), False))
        else:
            key, value = term.replace("==", "=").split("=", 1)
            out.append((key.strip(), value.strip(), True))
    return out


@dataclass
class _Query:
    resource: str
    namespace: str | None
    fields: list[tuple[str, str, bool]]
    labels: list[tuple[str, str, bool]]

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        for path, value, equal in self.fields:
            if (_field(obj, path) == value) != equal:
                return False
        obj_labels = meta.get("labels") or {}
        for key, value, equal in self.labels:
            if (obj_labels.get(key) == value) != equal:
                return False
        return True


@dataclass
class _Change:
    rv: int
    resource: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass(eq=False)  # identity, not value: a watch is a member of a set
class _Watch:
    query: _Query
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


def _event_for(query: _Query, change: _Change) -> tuple[str, dict[str, Any]] | None:
    """The event a watch with ``query`` sees for a change: an object entering the selection is ADDED, leaving it
    DELETED (as kube-apiserver does for a pod scheduled onto or off a watched node)."""
    before, after = query.matches(change.old), query.matches(change.new)
    if after and change.new is not None:
        return ("MODIFIED" if before else "ADDED"), change.new
    if before and change.old is not None:
        deleted = copy.deepcopy(change.new if change.new is not None else change.old)
        deleted["metadata"]["resourceVersion"] = str(change.rv)
        return "DELETED", deleted
    return None


def _status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        out["details"] = details
    return out


_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


# ------------------------------------------------------------------------------------------------- server


class KubeApiServer:
    """The fake API server. Every method is called on the event loop the server runs on."""

    def __init__(self, *, service_account: str = "system:serviceaccount:monitoring:snat-exporter") -> None:
        self.service_account = service_account
        self.auth = KubeAuth()  # TokenReview and SubjectAccessReview (simulator/kubeauth.py)
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._history: list[_Change] = []
        self._compacted = self._rv  # watches from a resourceVersion older than this get 410
        self._watches: set[_Watch] = set()
        self._continues: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._tokens = itertools.count(1)
        self._failure: tuple[int, frozenset[str] | None, int | None, float | None] | None = None
        self.requests: Counter[tuple[str, str]] = Counter()  # (verb "list"/"watch", resource) -> count
        self.watch_versions: list[tuple[str, str | None]] = []  # (resource, resourceVersion asked) per watch
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._site: web.TCPSite | None = None
        self._port = 0
        self.url = ""

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve (again, after :meth:`stop`, on the same port unless one is given); returns the base URL."""
        app = web.Application()
        app.router.add_get("/api/v1/nodes", self._handle)
        app.router.add_get("/api/v1/pods", self._handle)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", self._handle)
        app.router.add_get("/version", self._version)
        self.auth.install(app)
        # handler_cancellation: a watch handler idle on its queue learns at once that the client went away.
        # shutdown_timeout: stop() is an API server going away, not a graceful drain of hour-long watches.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=0.5
        )
        self._stopping = False
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port or self._port, reuse_address=True)
        await self._site.start()
        server: Any = self._site._server
        self._port = server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{self._port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening and close every connection: the API server is down until :meth:`start`."""
        self._stopping = True  # a watch that arrives while we stop is cut at once too
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        return self._port

    # ---------------------------------------------------------------------------------------- test API
    @property
    def resource_version(self) -> int:
        return self._rv

    def objects(self, resource: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self._objects[resource].values()]

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an object (by kind, namespace, name); open watches get ADDED or MODIFIED."""
        resource = {kind: r for r, (kind, _) in RESOURCES.items()}[obj["kind"]]
        new = copy.deepcopy(dict(obj))
        meta = new.setdefault("metadata", {})
        key = (meta.get("namespace") or "", meta["name"])
        old = self._objects[resource].get(key)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-11-22T00:00:00Z")
        self._objects[resource][key] = new
        self._publish(_Change(self._rv, resource, old, new))
        return copy.deepcopy(new)

    def add(self, *objs: Mapping[str, Any]) -> None:
        for obj in objs:
            self.apply(obj)

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        old = self._objects[resource].pop((namespace, name))
        self._rv += 1
        self._publish(_Change(self._rv, resource, old, None))

    def drop_watches(self) -> int:
        """Break every open watch connection mid-stream (no end of stream): a network cut or an API server
        restart. Returns how many were open."""
        watches = list(self._watches)
        for w in watches:
            w.queue.put_nowait(_DROP)
        return len(watches)

    def open_watches(self, resource: str | None = None) -> int:
        return sum(1 for w in self._watches if resource is None or w.query.resource == resource)

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every watch that allows bookmarks."""
        for w in self._watches:
            if w.bookmarks:
                w.queue.put_nowait(("BOOKMARK", self._bookmark_object(w.query.resource)))

    def compact(self) -> None:
        """Forget the history up to now (etcd compaction): older resourceVersions get 410 Gone."""
        self._history.clear()
        self._compacted = self._rv
        self._continues.clear()

    def fail(
        self,
        status: int,
        *,
        resources: Iterable[str] | None = None,
        times: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer list and watch requests (of ``resources``, default all) with ``status`` until :meth:`heal`,
        or for the next ``times`` requests."""
        self._failure = (status, frozenset(resources) if resources is not None else None, times, retry_after)

    def heal(self) -> None:
        self._failure = None

    # ---------------------------------------------------------------------------------------- internals
    def _publish(self, change: _Change) -> None:
        self._history.append(change)
        for w in self._watches:
            if w.query.resource == change.resource:
                event = _event_for(w.query, change)
                if event is not None:
                    w.queue.put_nowait(event)

    def _bookmark_object(self, resource: str) -> dict[str, Any]:
        return {"kind": RESOURCES[resource][0], "apiVersion": "v1", "metadata": {"resourceVersion": str(self._rv)}}

    def _injected_failure(self, verb: str, resource: str) -> web.Response | None:
        if self._failure is None:
            return None
        status, resources, times, retry_after = self._failure
        if resources is not None and resource not in resources:
            return None
        if times is not None:
            self._failure = (status, resources, times - 1, retry_after) if times > 1 else None
        reason = _REASONS.get(status, "InternalError")
        if status == 403:
            message = (
                f'{resource} is forbidden: User "{self.service_account}" cannot {verb} resource "{resource}" '
                'in API group "" at the cluster scope'
            )
        elif status == 401:
            message = "Unauthorized"
        else:
            message = f"simulated failure {status} ({reason})"
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        return web.json_response(_status(status, reason, message, kind=resource), status=status, headers=headers)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0-snat-exporter-sim"})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        resource = request.path.rsplit("/", 1)[1]
        q = request.query
        watch = q.get("watch", "").lower() in ("true", "1")
        verb = "watch" if watch else "list"
        self.requests[(verb, resource)] += 1
        failure = self._injected_failure(verb, resource)
        if failure is not None:
            return failure
        try:
            query = _Query(
                resource,
                request.match_info.get("namespace"),
                _parse_selector(q.get("fieldSelector")),
                _parse_selector(q.get("labelSelector")),
            )
        except ValueError:
            return web.json_response(_status(400, "BadRequest", "unparsable selector"), status=400)
        if watch:
            return await self._watch(request, query)
        return self._list(query, q)

    def _list(self, query: _Query, q: Mapping[str, str]) -> web.Response:
        kind = RESOURCES[query.resource][0]
        token = q.get("continue")
        if token:
            saved = self._continues.get(token)
            if saved is None:
                message = "The provided continue parameter is too old to display a consistent list result."
                return web.json_response(_status(410, "Expired", message), status=410)
            rv, remaining = saved
        else:
            rv = self._rv
            items = [o for _, o in sorted(self._objects[query.resource].items()) if query.matches(o)]
            remaining = [copy.deepcopy(o) for o in items]
        limit = int(q.get("limit") or 0)
        page, rest = (remaining[:limit], remaining[limit:]) if limit > 0 else (remaining, [])
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if rest:
            next_token = f"c{next(self._tokens)}"
            self._continues[next_token] = (rv, rest)
            meta["continue"] = next_token
            meta["remainingItemCount"] = len(rest)
        for item in page:  # list items carry neither kind nor apiVersion, as the real server sends them
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return web.json_response({"kind": f"{kind}List", "apiVersion": "v1", "metadata": meta, "items": page})

    async def _watch(self, request: web.Request, query: _Query) -> web.StreamResponse:
        q = request.query
        version = q.get("resourceVersion") or None
        self.watch_versions.append((query.resource, version))
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("true", "1")
        timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def send(kind: str, obj: Mapping[str, Any]) -> None:
            await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        start_rv: int | None = None
        if version not in (None, "0"):
            try:
                start_rv = int(str(version))
            except ValueError:
                await send("ERROR", _status(400, "BadRequest", f"invalid resourceVersion {version!r}"))
                await resp.write_eof()
                return resp
            if start_rv < self._compacted:
                message = f"too old resource version: {start_rv} ({self._compacted})"
                await send("ERROR", _status(410, "Expired", message))
                await resp.write_eof()
                return resp
        w = _Watch(query, bookmarks)
        # Queue the backlog and register in one step (no await in between), so that no change falls in a gap.
        if start_rv is None:
            for obj in self._objects[query.resource].values():
                if query.matches(obj):
                    w.queue.put_nowait(("ADDED", copy.deepcopy(obj)))
        else:
            for change in self._history:
                if change.rv > start_rv and change.resource == query.resource:
                    event = _event_for(query, change)
                    if event is not None:
                        w.queue.put_nowait(event)
        self._watches.add(w)
        if self._stopping:
            w.queue.put_nowait(_DROP)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if bookmarks:
                        await send("BOOKMARK", self._bookmark_object(query.resource))
                    await resp.write_eof()
                    return resp
                try:
                    item = await asyncio.wait_for(w.queue.get(), remaining)
                except TimeoutError:
                    continue
                if item is _DROP:
                    # Cut the connection without the final chunk: the client sees a stream that broke.
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                await send(*item)
        except (ConnectionResetError, ConnectionError):
            return resp
        finally:
            self._watches.discard(w)


async def _main(args: argparse.Namespace) -> None:
    server = KubeApiServer()
    if args.scenario:
        server.add(*scenario_nodes(args.scenario))
    url = await server.start(args.host, args.port)
    print(f"kube API server on {url} ({len(server.objects('nodes'))} nodes)", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--scenario", help="serve the nodes of this Azure simulator scenario")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
