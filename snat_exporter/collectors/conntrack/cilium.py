"""Cilium's SNAT maps: their layout, the check before use, and the decoding of entries into flow keys.

On eBPF host routing (``enable-bpf-masquerade: true``, ``enable-host-legacy-routing: false``) Cilium masquerades
pod egress in its BPF programs and nf_conntrack never sees the flow; the mapping lives in the pinned LRU hash maps
``cilium_snat_v4_external`` and ``cilium_snat_v6_external`` (``<bpffs>/tc/globals/``).

Layout, as read in cilium/cilium ``bpf/lib/common.h`` (struct ipv4_ct_tuple, TUPLE_F_*) and ``bpf/lib/nat.h``
(struct nat_entry, struct ipv4_nat_entry) at the v1.15-era commit 18cde1cf406b and the v1.18-era nat.h that
declares the map with ``DECLARE_CONFIG``; the Go mirror ``pkg/maps/nat`` (NatEntry4: 38 bytes of fields, 40 with
alignment) agrees. The structures did not change from v1.14 to v1.19:

- key, ``struct ipv4_ct_tuple`` (packed, 14 bytes): daddr, saddr (be32), dport, sport (be16), nexthdr, flags.
  In the NAT map the tuple is the packet's own (the CT map reverses addresses, the NAT map does not).
  ``struct ipv6_ct_tuple`` is the same with 16-byte addresses (38 bytes).
- value, ``struct ipv4_nat_entry`` (40 bytes): a 32-byte ``struct nat_entry`` (created, needs_ct, pad1, pad2,
  all u64), then to_saddr (be32), to_sport (be16), 2 bytes of padding. ``struct ipv6_nat_entry``: 32 + 16 + 2,
  padded to 56.
- every masqueraded flow has two entries (nat.h ``snat_v4_new_mapping``): the egress one, flags TUPLE_F_OUT (0),
  keyed by the original tuple (pod or node -> destination) with the chosen source in to_saddr/to_sport; and the
  reverse one, flags TUPLE_F_IN (1), keyed by the reply tuple (destination -> egress IP:port). Only egress
  entries are counted: the reverse entry is the same flow.
- a flow the node itself starts goes through the same code: to_saddr is its own address and Cilium keeps the
  source port when it lies in the NAT range (``__snat_try_keep_port``). It still spends an Azure SNAT port, so it
  counts, in the node's own bucket, with snat="false" as the netlink source reports it.

Exhaustion in Cilium is per reverse tuple: one (egress IP, destination IP, destination port, protocol) can hold
as many flows as the NAT port range has ports (NODEPORT_PORT_MIN_NAT..NODEPORT_PORT_MAX_NAT, 32768-65535 with
the default NodePort range), then new flows are dropped with "No mapping for NAT masquerade".

The entries our tests write are written by the tests, not by Cilium: check the decoder once on a real eBPF host
routing node against ``cilium-dbg bpf nat list`` (docs/conntrack.md says how).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

from snat_exporter.collectors.conntrack import bpf
from snat_exporter.collectors.conntrack.parse import PROTOCOLS, FlowKey

TUPLE_F_OUT = 0
TUPLE_F_IN = 1

MAP_DIR = "tc/globals"


@dataclass(frozen=True)
class Layout:
    map_name: str
    family: int
    key: struct.Struct  # daddr, saddr, dport, sport (raw), nexthdr, flags
    value: struct.Struct  # to_saddr, to_sport (raw)

    @property
    def label(self) -> str:
        return "v4" if self.family == socket.AF_INET else "v6"


V4 = Layout("cilium_snat_v4_external", socket.AF_INET, struct.Struct("=4s4s2s2sBB"), struct.Struct("=32x4s2s2x"))
V6 = Layout("cilium_snat_v6_external", socket.AF_INET6, struct.Struct("=16s16s2s2sBB"), struct.Struct("=32x16s2s6x"))
LAYOUTS = (V4, V6)
ACCEPTED_TYPES = (bpf.BPF_MAP_TYPE_LRU_HASH, bpf.BPF_MAP_TYPE_HASH)  # HASH: Cilium built without LRU support


class LayoutError(ValueError):
    """The pinned map is not the one this decoder knows: another type, key or value size."""


def check(info: bpf.MapInfo, layout: Layout) -> None:
    """Refuse a map whose shape is not Cilium's SNAT map: decoding it would produce confident nonsense."""
    problems = []
    if info.type not in ACCEPTED_TYPES:
        problems.append(f"type {info.type_name} (want lru_hash)")
    if info.key_size != layout.key.size:
        problems.append(f"key size {info.key_size} (want {layout.key.size}, struct ip{layout.label}_ct_tuple)")
    if info.value_size != layout.value.size:
        problems.append(f"value size {info.value_size} (want {layout.value.size}, struct ip{layout.label}_nat_entry)")
    if problems:
        raise LayoutError(
            f"{layout.map_name} is not a Cilium 1.14-1.19 SNAT map: " + ", ".join(problems) + "; its flows are not "
            "read (a Cilium with another layout needs a newer snat-exporter)"
        )


# (source ip, protocol, destination ip, destination port, egress ip, source NAT applied), all raw bytes:
# counted first, decoded once per distinct key.
RawKey = tuple[bytes, int, bytes, bytes, bytes, bool]
# (egress ip, destination ip, destination port, protocol name)
EgressTuple = tuple[str, str, str, str]


@dataclass
class NatCounts:
    """Egress entries of one or more SNAT maps, counted by raw key."""

    raw: Counter[RawKey] = field(default_factory=Counter)
    entries: int = 0  # every entry read, both directions
    egress: int = 0

    def feed(self, layout: Layout, keys: bytes, values: bytes) -> None:
        """Count the egress entries among ``keys``/``values`` (entries packed back to back, as a batch gives them).

        One pass in C: iter_unpack splits the buffers, the generator keeps egress entries, Counter.update counts
        the tuples; no Python statement runs per entry beyond the generator's filter."""
        n = len(keys) // layout.key.size
        before = self.raw.total()
        self.raw.update(
            (saddr, proto, daddr, dport, to_saddr, to_saddr != saddr or to_sport != sport)
            for (daddr, saddr, dport, sport, proto, flags), (to_saddr, to_sport) in zip(
                layout.key.iter_unpack(keys), layout.value.iter_unpack(values), strict=True
            )
            if not flags & TUPLE_F_IN
        )
        self.entries += n
        self.egress += self.raw.total() - before

    def flows(self) -> Counter[FlowKey]:
        """The counts as the flow keys every source gives the aggregation. The map has no TCP state: ""."""
        out: Counter[FlowKey] = Counter()
        for (saddr, proto, daddr, dport, _egress, snat), n in self.raw.items():
            out[(_ip(saddr), proto, _ip(daddr), int.from_bytes(dport, "big"), snat, "")] += n
        return out

    def egress_addresses(self) -> set[str]:
        """The addresses Cilium masquerades to: the node's own, whatever the agent's network namespace sees."""
        return {_ip(k[4]) for k in self.raw}

    def tuples(self) -> Counter[EgressTuple]:
        """Flows per (egress IP, destination IP, destination port, protocol): what one NAT port range serves."""
        out: Counter[EgressTuple] = Counter()
        for (_saddr, proto, daddr, dport, egress, _snat), n in self.raw.items():
            out[(_ip(egress), _ip(daddr), str(int.from_bytes(dport, "big")), _protocol(proto))] += n
        return out


def _ip(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _protocol(number: int) -> str:
    return PROTOCOLS.get(number, str(number))


# ------------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class MapRead:
    layout: Layout
    info: bpf.MapInfo
    entries: int
    batched: bool


def map_path(bpffs: str, layout: Layout) -> str:
    return os.path.join(bpffs, MAP_DIR, layout.map_name)


def read_map(path: str, layout: Layout, counts: NatCounts, *, batch: bool = True) -> MapRead:
    """Open the map pinned at ``path`` read-only, check its shape, and count its entries into ``counts``.

    Raises FileNotFoundError (not pinned), PermissionError, LayoutError or OSError."""
    fd = bpf.obj_get(path)
    try:
        info = bpf.map_info(fd)
        check(info, layout)
        entries = counts.entries
        batched = False
        if batch:
            try:
                for key_buf, value_buf, _n in bpf.lookup_batches(fd, layout.key.size, layout.value.size):
                    batched = True
                    counts.feed(layout, key_buf, value_buf)
                batched = True
            except OSError as e:
                # Only a refusal of the very first call means "no batch lookup here"; later errors are real.
                if batched or e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bpf.ENOTSUPP):
                    raise
        if not batched:
            # Fed in chunks so that the per-entry cost is the two system calls, not a Counter update each.
            keys: list[bytes] = []
            values: list[bytes] = []
            for key, value in bpf.lookup_each(fd, layout.key.size, layout.value.size, info.max_entries + 1024):
                keys.append(key)
                values.append(value)
                if len(keys) == 4096:
                    counts.feed(layout, b"".join(keys), b"".join(values))
                    keys.clear()
                    values.clear()
            counts.feed(layout, b"".join(keys), b"".join(values))
        return MapRead(layout, info, counts.entries - entries, batched)
    finally:
        os.close(fd)
