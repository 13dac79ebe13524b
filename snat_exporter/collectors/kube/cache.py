"""IP -> node / pod indexes, fed with raw API objects (the JSON dicts of a list page or a watch event).

The indexes keep only what the lookups return: a node's name, pool and zone; a pod's namespace, name and owning
workload. Repeated strings (namespaces, pools, zones, workloads) are interned, records are slots dataclasses, so
110,000 pods fit in tens of megabytes. Writers are the watch threads (one per resource); readers are the event
loop. A single ``dict.get`` is atomic under the GIL, so lookups take no lock; writers and whole-index copies take
``_lock`` so that nobody iterates a dict while it changes size.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Self

from snat_exporter.identity import EBPF_HOST_ROUTING_LABEL, NodeInfo, PodInfo
from snat_exporter.labels import is_label_text

POOL_LABELS = ("kubernetes.azure.com/agentpool", "agentpool")
ZONE_LABEL = "topology.kubernetes.io/zone"
TEMPLATE_HASH_LABEL = "pod-template-hash"

# The CronJob controller names a Job "<cronjob>-<scheduled time in minutes since the epoch>" (getJobName in
# kubernetes/pkg/controller/cronjob/utils.go). Eight digits cover 1990-2160; anything else is a plain Job name.
_CRONJOB_SUFFIX = re.compile(r"^(?P<cronjob>.+)-(?P<minutes>[1-9]\d{7})$")

# A pod in a terminal phase keeps status.podIP although its sandbox is gone and the IP may already belong to a
# new pod (completed Job pods linger for hours): it must not claim the IP.
_TERMINAL_PHASES = frozenset(("Succeeded", "Failed"))

_intern = sys.intern


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def owner_workload(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of the workload that owns a pod, resolved by naming convention without extra API calls.

    A ReplicaSet created by a Deployment is "<deployment>-<pod-template-hash>" and its pods carry that hash as a
    label, so the Deployment is exact. A Job created by a CronJob is "<cronjob>-<minutes>"; the suffix check is
    strict (8 digits) but a hand-made Job named like that would be reported as its "CronJob".
    """
    meta = obj.get("metadata") or {}
    refs = meta.get("ownerReferences") or ()
    owner = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not owner:
        return "", ""
    kind = str(owner.get("kind") or "")
    name = str(owner.get("name") or "")
    if kind == "ReplicaSet":
        template_hash = _labels(obj).get(TEMPLATE_HASH_LABEL)
        if template_hash and name.endswith("-" + template_hash):
            return "Deployment", name[: -len(template_hash) - 1]
    elif kind == "Job":
        m = _CRONJOB_SUFFIX.match(name)
        if m:
            return "CronJob", m.group("cronjob")
    return kind, name


def _created(meta: Mapping[str, Any]) -> float:
    """metadata.creationTimestamp as Unix time; 0 when absent or unreadable (ranks as the oldest)."""
    stamp = meta.get("creationTimestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return 0.0


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("object without metadata.name")
    return _intern(str(meta.get("namespace") or "")), name


class Index:
    """Shared machinery: objects by (namespace, name) -> the IPs they claim, and IP -> record.

    Two live objects can claim one IP for a while (a pod being torn down and the new pod that got its IP; events
    of the two arrive in any order, and a relist applies them in name order). The best claim answers: an object
    without ``deletionTimestamp`` over one being deleted, then the newer (``creationTimestamp``), then the newest
    claim. The others wait in ``_contested`` (rare, so small) and the best of them takes over if the answering
    one goes away first. A terminating pod's status updates never steal the IP back from its successor.
    """

    resource = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], tuple[str, ...]] = {}
        self._by_ip: dict[str, Any] = {}
        self._contested: dict[str, list[Any]] = {}
        # Only what ranks a claim: creation time per object (a float, ~8 MB at 110,000 pods) and the few objects
        # being deleted.
        self._created: dict[tuple[str, str], float] = {}
        self._terminating: set[tuple[str, str]] = set()
        # Objects whose names cannot be label values (every collector exports them): not indexed, counted. Kept
        # across relists (adopt adds the fresh index's count), so it only grows.
        self.rejected = 0

    def _refuse(self, *texts: str) -> bool:
        """True (and counted) when one of an object's names cannot be a label value: it claims no IP then."""
        if all(is_label_text(t) for t in texts):
            return False
        self.rejected += 1
        return True

    def __len__(self) -> int:
        return len(self._objects)

    def _parse(self, obj: Mapping[str, Any]) -> tuple[tuple[str, ...], Any]:
        raise NotImplementedError

    @staticmethod
    def _owner(record: Any) -> tuple[str, str] | None:
        raise NotImplementedError

    def _rank(self, record: Any) -> tuple[bool, float]:
        key = self._owner(record)
        return key not in self._terminating, self._created.get(key, 0.0)  # type: ignore[arg-type]

    def _claims(self, ip: str) -> list[Any]:
        """Every claim of ``ip``, oldest first (the contested list holds them all, the answer included)."""
        contested = self._contested.get(ip)
        if contested is not None:
            return list(contested)
        current = self._by_ip.get(ip)
        return [] if current is None else [current]

    def _settle(self, ip: str, claims: list[Any]) -> None:
        """The best of ``claims`` (oldest first) answers for ``ip``; on equal rank the newest claim, so that a
        reused IP names the new object."""
        if not claims:
            self._by_ip.pop(ip, None)
            self._contested.pop(ip, None)
            return
        best = claims[-1]
        for r in reversed(claims):
            if self._rank(r) > self._rank(best):
                best = r
        self._by_ip[ip] = best
        if len(claims) > 1:
            self._contested[ip] = claims
        else:
            self._contested.pop(ip, None)

    def _claim(self, key: tuple[str, str], ip: str, record: Any) -> None:
        """``key`` claims ``ip`` with ``record``: a new claim, or an update of its own."""
        current = self._by_ip.get(ip)
        if ip not in self._contested and (current is None or self._owner(current) == key):
            self._by_ip[ip] = record  # the usual case: nobody else claims the IP
            return
        claims = self._claims(ip)
        if any(self._owner(r) == key for r in claims):
            claims = [record if self._owner(r) == key else r for r in claims]  # an update keeps its place
        else:
            claims.append(record)
        self._settle(ip, claims)

    def _unclaim(self, key: tuple[str, str], ip: str) -> None:
        self._settle(ip, [r for r in self._claims(ip) if self._owner(r) != key])

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED); BOOKMARK and ERROR are the watcher's business."""
        key = _key(obj)
        with self._lock:
            old = self._objects.get(key, ())
            if event_type == "DELETED":
                for ip in old:
                    self._unclaim(key, ip)
                self._objects.pop(key, None)
                self._created.pop(key, None)
                self._terminating.discard(key)
                self._deleted(key)
                return
            ips, record = self._parse(obj)
            meta = obj.get("metadata") or {}
            created = _created(meta)
            if created:
                self._created[key] = created
            if meta.get("deletionTimestamp"):
                self._terminating.add(key)
            else:
                self._terminating.discard(key)
            for ip in old:
                if ip not in ips:
                    self._unclaim(key, ip)
            for ip in ips:
                self._claim(key, ip, record)
            self._objects[key] = ips

    def _deleted(self, key: tuple[str, str]) -> None:
        pass

    def empty(self) -> Self:
        """A new, empty index of the same kind: a relist fills it aside, then :meth:`adopt` swaps it in."""
        return type(self)()

    def adopt(self, fresh: Self) -> None:
        """Take over the contents of ``fresh`` in one step, so lookups answer from the old data until then."""
        with self._lock:
            self._swap(fresh)
            self.rejected += fresh.rejected

    def replace(self, objs: Iterable[Mapping[str, Any]]) -> None:
        fresh = self.empty()
        for obj in objs:
            fresh.apply("ADDED", obj)
        self.adopt(fresh)

    def _swap(self, fresh: Any) -> None:
        self._objects, self._by_ip, self._contested = fresh._objects, fresh._by_ip, fresh._contested
        self._created, self._terminating = fresh._created, fresh._terminating

    def clear(self) -> None:
        self.replace(())


class NodeIndex(Index):
    """InternalIP(s) -> NodeInfo(name, pool, zone)."""

    resource = "nodes"

    def _parse(self, obj: Mapping[str, Any]) -> tuple[tuple[str, ...], NodeInfo]:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        pool = next((labels[k] for k in POOL_LABELS if labels.get(k)), "")
        info = NodeInfo(
            name=_intern(str(meta["name"])),
            pool=_intern(str(pool)),
            zone=_intern(str(labels.get(ZONE_LABEL) or "")),
            ebpf_host_routing=labels.get(EBPF_HOST_ROUTING_LABEL) == "true",
        )
        addresses = (obj.get("status") or {}).get("addresses") or ()
        ips = tuple(
            dict.fromkeys(
                _intern(str(a["address"])) for a in addresses if a.get("type") == "InternalIP" and a.get("address")
            )
        )
        if self._refuse(info.name, info.pool, info.zone, *ips):  # the InternalIP is a label of snat_kube_node_info
            return (), info
        return ips, info

    @staticmethod
    def _owner(record: Any) -> tuple[str, str] | None:
        return ("", record.name) if record is not None else None

    def get(self, ip: str) -> NodeInfo | None:
        info: NodeInfo | None = self._by_ip.get(ip)
        return info

    def by_name(self, name: str) -> NodeInfo | None:
        """The node called ``name``, found through one of its InternalIPs (a node without one is not indexed)."""
        for ip in self._objects.get(("", name), ()):
            info = self._by_ip.get(ip)
            if info is not None and info.name == name:
                return info
        return None

    def items(self) -> list[tuple[str, NodeInfo]]:
        with self._lock:
            return list(self._by_ip.items())


class PodIndex(Index):
    """Pod IP(s) -> PodInfo(namespace, name, workload). Also counts the node IPs that pods run on (status.hostIP),
    so that a node agent that does not watch nodes still knows its node's IP is not a pod's."""

    resource = "pods"

    def __init__(self) -> None:
        super().__init__()
        self._host_of: dict[tuple[str, str], str] = {}
        self._hosts: dict[str, int] = {}

    def _parse(self, obj: Mapping[str, Any]) -> tuple[tuple[str, ...], PodInfo | None]:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        key = (_intern(str(meta.get("namespace") or "")), str(meta["name"]))
        self._set_host(key, status.get("hostIP"))
        if spec.get("hostNetwork") or status.get("phase") in _TERMINAL_PHASES:
            # A host-network pod's "pod IP" is the node's IP: flows from it are the node's, not the pod's.
            return (), None
        ips = tuple(dict.fromkeys(str(p["ip"]) for p in status.get("podIPs") or () if p.get("ip")))
        if not ips and status.get("podIP"):
            ips = (str(status["podIP"]),)
        if not ips:
            return (), None
        kind, workload = owner_workload(obj)
        if self._refuse(key[0], key[1], workload, kind):
            return (), None
        info = PodInfo(namespace=key[0], name=key[1], workload=_intern(workload), workload_kind=_intern(kind))
        return ips, info

    def _set_host(self, key: tuple[str, str], host_ip: Any) -> None:
        old = self._host_of.get(key)
        new = _intern(str(host_ip)) if host_ip else None
        if old == new:
            return
        if old is not None:
            self._drop_host(old)
        if new is None:
            self._host_of.pop(key, None)
        else:
            self._host_of[key] = new
            self._hosts[new] = self._hosts.get(new, 0) + 1

    def _drop_host(self, ip: str) -> None:
        left = self._hosts.get(ip, 0) - 1
        if left > 0:
            self._hosts[ip] = left
        else:
            self._hosts.pop(ip, None)

    def _deleted(self, key: tuple[str, str]) -> None:
        old = self._host_of.pop(key, None)
        if old is not None:
            self._drop_host(old)

    def _swap(self, fresh: Any) -> None:
        super()._swap(fresh)
        self._host_of, self._hosts = fresh._host_of, fresh._hosts

    @staticmethod
    def _owner(record: Any) -> tuple[str, str] | None:
        return (record.namespace, record.name) if record is not None else None

    def get(self, ip: str) -> PodInfo | None:
        if ip in self._hosts:
            return None
        info: PodInfo | None = self._by_ip.get(ip)
        return info

    def is_host(self, ip: str) -> bool:
        return ip in self._hosts


class KubeIdentity:
    """The lookup other collectors receive (snat_exporter.identity.Identity). A node IP never names a pod: flows from
    it belong to the node itself or to host-network pods, which the conntrack collector reports as "host"."""

    def __init__(self, nodes: NodeIndex, pods: PodIndex) -> None:
        self.nodes = nodes
        self.pods = pods
        # Replaced whole by the collector (one reference assignment: readers never see half a dict).
        self.cilium: Mapping[str, str] | None = None

    def cilium_config(self) -> Mapping[str, str] | None:
        return self.cilium

    def node_by_ip(self, ip: str) -> NodeInfo | None:
        return self.nodes.get(ip)

    def node_by_name(self, name: str) -> NodeInfo | None:
        return self.nodes.by_name(name)

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        if self.nodes.get(ip) is not None:
            return None
        return self.pods.get(ip)
