"""What a list or a watch of the fake API server selects, and the event a change makes on a watch: field and label
selectors (equality only), ADDED / MODIFIED / DELETED as an object enters, changes in or leaves a selection, and
the Status body of an error."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def parse_selector(text: str | None) -> list[tuple[str, str, bool]]:
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
class Query:
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
class Change:
    rv: int
    resource: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass(eq=False)  # identity, not value: a watch is a member of a set
class Watch:
    query: Query
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


def event_for(query: Query, change: Change) -> tuple[str, dict[str, Any]] | None:
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


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
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


REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
