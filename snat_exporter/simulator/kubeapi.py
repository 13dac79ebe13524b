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
from typing import Any

from aiohttp import web

from snat_exporter.simulator.kubeauth import KubeAuth
from snat_exporter.simulator.kubeobjects import scenario_nodes
from snat_exporter.simulator.kubeselect import REASONS, Change, Query, Watch, event_for, parse_selector, status_body

RESOURCES = {"nodes": ("Node", False), "pods": ("Pod", True)}  # resource -> (kind, namespaced)
DEFAULT_WATCH_TIMEOUT = 1800.0
_DROP = object()


# ------------------------------------------------------------------------------------------------- server


class KubeApiServer:
    """The fake API server. Every method is called on the event loop the server runs on."""

    def __init__(self, *, service_account: str = "system:serviceaccount:monitoring:snat-exporter") -> None:
        self.service_account = service_account
        self.auth = KubeAuth()  # TokenReview and SubjectAccessReview (simulator/kubeauth.py)
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._history: list[Change] = []
        self._compacted = self._rv  # watches from a resourceVersion older than this get 410
        self._watches: set[Watch] = set()
        self._continues: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._tokens = itertools.count(1)
        self._failure: tuple[int, frozenset[str] | None, int | None, float | None] | None = None
        self.configmaps: dict[tuple[str, str], dict[str, str]] = {}  # (namespace, name) -> data; GET only
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
        app.router.add_get("/api/v1/namespaces/{namespace}/configmaps/{name}", self._get_configmap)
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
        self._publish(Change(self._rv, resource, old, new))
        return copy.deepcopy(new)

    def add(self, *objs: Mapping[str, Any]) -> None:
        for obj in objs:
            self.apply(obj)

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        old = self._objects[resource].pop((namespace, name))
        self._rv += 1
        self._publish(Change(self._rv, resource, old, None))

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
    def _publish(self, change: Change) -> None:
        self._history.append(change)
        for w in self._watches:
            if w.query.resource == change.resource:
                event = event_for(w.query, change)
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
        reason = REASONS.get(status, "InternalError")
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
        return web.json_response(status_body(status, reason, message, kind=resource), status=status, headers=headers)

    async def _get_configmap(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        self.requests[("get", "configmaps")] += 1
        failure = self._injected_failure("get", "configmaps")
        if failure is not None:
            return failure
        data = self.configmaps.get((namespace, name))
        if data is None:
            message = f'configmaps "{name}" not found'
            return web.json_response(status_body(404, "NotFound", message, kind="configmaps", name=name), status=404)
        meta = {"name": name, "namespace": namespace, "resourceVersion": str(self._rv), "uid": str(uuid.uuid4())}
        return web.json_response({"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta, "data": data})

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
            query = Query(
                resource,
                request.match_info.get("namespace"),
                parse_selector(q.get("fieldSelector")),
                parse_selector(q.get("labelSelector")),
            )
        except ValueError:
            return web.json_response(status_body(400, "BadRequest", "unparsable selector"), status=400)
        if watch:
            return await self._watch(request, query)
        return self._list(query, q)

    def _list(self, query: Query, q: Mapping[str, str]) -> web.Response:
        kind = RESOURCES[query.resource][0]
        token = q.get("continue")
        if token:
            saved = self._continues.get(token)
            if saved is None:
                message = "The provided continue parameter is too old to display a consistent list result."
                return web.json_response(status_body(410, "Expired", message), status=410)
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

    async def _watch(self, request: web.Request, query: Query) -> web.StreamResponse:
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
                await send("ERROR", status_body(400, "BadRequest", f"invalid resourceVersion {version!r}"))
                await resp.write_eof()
                return resp
            if start_rv < self._compacted:
                message = f"too old resource version: {start_rv} ({self._compacted})"
                await send("ERROR", status_body(410, "Expired", message))
                await resp.write_eof()
                return resp
        w = Watch(query, bookmarks)
        # Queue the backlog and register in one step (no await in between), so that no change falls in a gap.
        if start_rv is None:
            for obj in self._objects[query.resource].values():
                if query.matches(obj):
                    w.queue.put_nowait(("ADDED", copy.deepcopy(obj)))
        else:
            for change in self._history:
                if change.rv > start_rv and change.resource == query.resource:
                    event = event_for(query, change)
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
