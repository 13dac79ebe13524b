"""List + watch of one resource, in its own thread, through the official (synchronous) ``kubernetes`` client.

The protocol is client-go's reflector: a paged list gives the state and a resourceVersion; a watch from that
resourceVersion (with bookmarks) streams the changes. A watch that ends or drops is resumed from the last
resourceVersion seen, without a relist; only 410 Gone (history compacted) forces a relist. Errors back off
exponentially with jitter. Raw JSON is parsed with ``_preload_content=False`` instead of the client's model
classes: a model object per pod costs milliseconds and kilobytes, and the cache keeps five fields.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter

from snat_exporter.collectors.kube.backoff import Backoff
from snat_exporter.collectors.kube.cache import Index
from snat_exporter.collectors.kube.failures import Failure, classify, error_event

log = logging.getLogger("snat_exporter.kube")

CONNECT_TIMEOUT = 5.0
# Slack over the server-side watch timeout before a silent connection is declared dead.
WATCH_READ_GRACE = 15.0


def _lines(resp: Any) -> Iterator[bytes]:
    """Newline-delimited JSON events out of a chunked watch response, yielded as soon as each line is complete."""
    pending = b""
    for chunk in resp.stream(None):
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class Reflector:
    """Keeps one index in step with one resource. ``list_func`` is a ``CoreV1Api.list_*`` method."""

    def __init__(
        self,
        resource: str,
        list_func: Callable[..., Any],
        index: Index,
        *,
        field_selector: str | None = None,
        page_size: int = 500,
        list_timeout: float = 30.0,
        watch_timeout: float = 300.0,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        restarts: Counter | None = None,
    ) -> None:
        self.resource = resource
        self.list_func = list_func
        self.index = index
        self.field_selector = field_selector
        self.page_size = page_size
        self.list_timeout = list_timeout
        self.watch_timeout = max(1, int(watch_timeout))
        self.max_age = max_age
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.restarts = restarts
        # State read by the collector (single writer: the thread; plain attribute reads are atomic).
        self.resource_version: str | None = None
        self.synced = False  # the index reflects a completed list (and has not been dropped since)
        self.last_sync: float | None = None  # wall time at which the index was last known current
        self.failure: Failure | None = None  # the fault of the current streak, None when healthy
        self.first_attempt = threading.Event()  # set once the first list succeeded or failed
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"kube-watch-{self.resource}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and unblock a watch waiting for its next event."""
        self._stop.set()
        resp = self._resp
        if resp is None:
            return
        # A blocking read does not notice the flag: shut the socket under it (as kubernetes.watch.Watch.stop does).
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------------------------------------- loop
    def _run(self) -> None:
        gone_in_row = 0
        try:
            while not self._stop.is_set():
                try:
                    if self.resource_version is None:
                        self._list()
                        self.first_attempt.set()
                    delivered = self._watch()
                    gone_in_row = 0
                    if not self._stop.is_set():
                        self._count("expired")
                        if not delivered:
                            # An empty watch that ended at once must not turn into a busy loop.
                            self._stop.wait(self.backoff.next())
                except Exception as exc:  # the thread is the one place that contains every fault of this watch
                    if self._stop.is_set():
                        break
                    failure = classify(exc)
                    if failure.reason == "gone":
                        # Relist at once: the history we need is gone. Twice in a row means the server compacts
                        # faster than we list: back off like any other fault.
                        self.resource_version = None
                        self._count("gone")
                        log.info("kubernetes watch history expired, relisting", extra={"resource": self.resource})
                        gone_in_row += 1
                        if gone_in_row > 1:
                            self._stop.wait(self.backoff.next())
                        continue
                    gone_in_row = 0
                    self._failed(failure)
                    self.first_attempt.set()  # after the failure is recorded and logged: collect() reports it
                    delay = self.backoff.next()
                    if failure.retry_after is not None:
                        delay = max(delay, failure.retry_after)
                    self._stop.wait(delay)
        finally:
            self.first_attempt.set()

    def _call(self, **kwargs: Any) -> Any:
        if self.field_selector:
            kwargs["field_selector"] = self.field_selector
        return self.list_func(_preload_content=False, **kwargs)

    def _list(self) -> None:
        """A full, paged list into a fresh index, swapped in whole at the end."""
        fresh = self.index.empty()
        token: str | None = None
        version: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.page_size,
                "timeout_seconds": max(1, int(self.list_timeout)),
                "_request_timeout": (CONNECT_TIMEOUT, self.list_timeout),
            }
            if token:
                kwargs["_continue"] = token
            resp = self._call(**kwargs)
            try:
                page = json.loads(resp.data)
            finally:
                resp.release_conn()
            for item in page.get("items") or ():
                fresh.apply("ADDED", item)
            meta = page.get("metadata") or {}
            version = version or meta.get("resourceVersion")
            token = meta.get("continue") or None
            if not token or self._stop.is_set():
                break
        if self._stop.is_set():
            return
        if not version:
            raise ValueError(f"{self.resource} list without metadata.resourceVersion")
        self.index.adopt(fresh)
        self.resource_version = str(version)
        self.synced = True
        self.backoff.reset()
        self._synced_now("listed", objects=len(self.index))

    def _watch(self) -> int:
        """One watch request from the current resourceVersion; returns how many events it delivered."""
        resp = self._call(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _request_timeout=(CONNECT_TIMEOUT, self.watch_timeout + WATCH_READ_GRACE),
        )
        self._resp = resp
        delivered = 0
        try:
            if self._stop.is_set():
                return delivered
            self._synced_now("watching")
            for line in _lines(resp):
                self._event(json.loads(line))
                delivered += 1
                self.backoff.reset()  # a watch that delivers is healthy, however short it lasts
                if self._stop.is_set():
                    break
            return delivered
        finally:
            self._resp = None
            # Close rather than return the connection: a half-read stream must never be reused by the next request.
            resp.close()
            resp.release_conn()

    def _event(self, event: Any) -> None:
        kind = event["type"]
        obj = event["object"]
        if kind == "ERROR":
            raise error_event(obj)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.index.apply(kind, obj)
        elif kind != "BOOKMARK":
            raise ValueError(f"unknown watch event type {kind!r}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        self._synced_now(None)

    # -------------------------------------------------------------------------------------------- state
    def _synced_now(self, what: str | None, **extra: Any) -> None:
        self.last_sync = self.clock()
        if self.failure is not None and self.synced:
            log.info(
                "kubernetes watch recovered",
                extra={"resource": self.resource, "after": self.failure.reason, **extra},
            )
            self.failure = None
        elif what == "listed":
            log.debug("kubernetes cache listed", extra={"resource": self.resource, **extra})

    def _count(self, reason: str) -> None:
        if self.restarts is not None:
            self.restarts.labels(self.resource, reason).inc()

    def _failed(self, failure: Failure) -> None:
        self._count(failure.reason)
        repeated = self.failure is not None and self.failure.reason == failure.reason
        self.failure = failure
        verb = "list" if self.resource_version is None else "watch"
        extra: dict[str, Any] = {
            "resource": self.resource,
            "verb": verb,
            "reason": failure.reason,
            "error": failure.message,
        }
        if failure.reason == "forbidden":
            message = (
                f"missing RBAC: the service account may not {verb} {self.resource}; "
                f"grant get, list, watch on {self.resource} (see docs/kubernetes.md)"
            )
        elif failure.reason == "dropped":
            message = "kubernetes watch dropped, resuming from the last resourceVersion"
        else:
            message = f"kubernetes {verb} failed"
        # One line per streak of the same fault: an API server down for an hour must not flood the log. A dropped
        # watch resumes without losing an event, so it is news, not a warning.
        level = logging.INFO if failure.reason == "dropped" else logging.WARNING
        log.log(logging.DEBUG if repeated else level, message, extra=extra)
        self._expire()

    def _expire(self) -> None:
        """Drop an index that has not been confirmed current for max_age: old names are worse than IP labels."""
        if not self.synced or self.last_sync is None:
            return
        if self.clock() - self.last_sync <= self.max_age:
            return
        self.synced = False
        self.resource_version = None
        self.index.clear()
        log.warning(
            "kubernetes cache dropped: no contact with the API server for longer than max_age",
            extra={"resource": self.resource, "max_age": self.max_age},
        )
