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
import itertools
import os
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

from snat_exporter.collectors.conntrack import bpf
from snat_exporter.collectors.conntrack.parse.records import PROTOCOLS, FlowKey

TUPLE_F_OUT = 0
TUPLE_F_IN = 1

MAP_DIR = "tc/globals"


@dataclass(frozen=True)
class Layout:
    map_name: str
    family: int
    address_size: int

    @property
    def label(self) -> str:
        return "v4" if self.family == socket.AF_INET else "v6"

    @property
    def key(self) -> struct.Struct:
        """struct ip*_ct_tuple: daddr, saddr, dport, sport (raw big-endian), nexthdr, flags; packed."""
        a = self.address_size
        return struct.Struct(f"={a}s{a}s2s2sBB")

    @property
    def value(self) -> struct.Struct:
        """struct ip*_nat_entry after its 32-byte common header: to_saddr, to_sport (raw), then padding to 8."""
        a = self.address_size
        return struct.Struct(f"=32x{a}s2s{(-(32 + a + 2)) % 8}x")

    @property
    def record(self) -> struct.Struct:
        """What is counted of one entry (see NatCounts.feed): the key with its source port and flags zeroed,
        then to_saddr: daddr, saddr, dport, nexthdr, to_saddr."""
        a = self.address_size
        return struct.Struct(f"={a}s{a}s2s2xBx{a}s")

    @property
    def key_columns(self) -> tuple[int, ...]:
        """Offsets of the key bytes that are counted: all but the source port and the flags."""
        a = self.address_size
        sport, flags = (2 * a + 2, 2 * a + 3), 2 * a + 5
        return tuple(c for c in range(2 * a + 6) if c not in sport and c != flags)


V4 = Layout("cilium_snat_v4_external", socket.AF_INET, 4)
V6 = Layout("cilium_snat_v6_external", socket.AF_INET6, 16)
LAYOUTS = (V4, V6)
ACCEPTED_TYPES = (bpf.BPF_MAP_TYPE_LRU_HASH, bpf.BPF_MAP_TYPE_HASH)  # HASH: Cilium built without LRU support
_BY_RECORD = {layout.record.size: layout for layout in LAYOUTS}
# bytes.translate table: flags byte -> 1 for an egress entry (TUPLE_F_IN clear), 0 for a reverse one.
_EGRESS = bytes(0 if flags & TUPLE_F_IN else 1 for flags in range(256))


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


# One Layout.record, as iter_unpack gives it: counted first, decoded once per distinct key.
RawKey = tuple[bytes]
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

        No Python statement runs per entry, and each entry becomes one bytes object to count: the counted bytes
        of every key and value are copied column by column (one extended-slice assignment per byte column, in
        C) into records with the source port and flags left zero, so that all entries of one (pod, destination,
        port, protocol, egress IP) are equal bytes; the flags column, mapped to 1/0 by one translate, selects
        the egress entries through itertools.compress; Counter.update counts. Measured (bench/cilium_map.py and
        the commit that brought it): 2.5x faster than unpacking fields into tuples and filtering in a
        generator, whose tuple hashing dominated."""
        size, vsize, rsize = layout.key.size, layout.value.size, layout.record.size
        n = len(keys) // size
        selectors = keys[size - 1 :: size].translate(_EGRESS)
        records = bytearray(rsize * n)
        for c in layout.key_columns:
            records[c::rsize] = keys[c::size]
        for i in range(layout.address_size):  # to_saddr, after the 32-byte common header
            records[size + i :: rsize] = values[32 + i :: vsize]
        self.raw.update(itertools.compress(struct.iter_unpack(f"{rsize}s", records), selectors))
        self.entries += n
        self.egress += selectors.count(1)

    def _decoded(self) -> list[tuple[bytes, bytes, bytes, int, bytes, int]]:
        out = []
        for (record,), n in self.raw.items():
            daddr, saddr, dport, proto, egress = _BY_RECORD[len(record)].record.unpack(record)
            out.append((daddr, saddr, dport, proto, egress, n))
        return out

    def flows(self) -> Counter[FlowKey]:
        """The counts as the flow keys every source gives the aggregation. The map has no TCP state: "".

        snat is "true" when Cilium rewrote the source address (pods), "false" for the node's own flows, which
        keep their address (Cilium may move their port), as the netlink source reports flows the node started."""
        out: Counter[FlowKey] = Counter()
        for daddr, saddr, dport, proto, egress, n in self._decoded():
            out[(_ip(saddr), proto, _ip(daddr), int.from_bytes(dport, "big"), egress != saddr, "")] += n
        return out

    def egress_addresses(self) -> set[str]:
        """The addresses Cilium masquerades to: the node's own, whatever the agent's network namespace sees."""
        return {_ip(egress) for _d, _s, _p, _n, egress, _c in self._decoded()}

    def tuples(self) -> Counter[EgressTuple]:
        """Flows per (egress IP, destination IP, destination port, protocol): what one NAT port range serves."""
        out: Counter[EgressTuple] = Counter()
        for daddr, _saddr, dport, proto, egress, n in self._decoded():
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
