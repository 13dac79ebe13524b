"""Real BPF maps with Cilium's SNAT layout, for the tests and bench/: a bpffs mounted in a temporary directory,
maps created and pinned through the bpf() system call, filled the way Cilium's datapath fills them (nat.h
``snat_v4_new_mapping``: an egress entry and its reverse entry per masqueraded flow).

The entries are written by us, not by Cilium: they check our decoder against our reading of Cilium's headers.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from snat_exporter.collectors.conntrack import bpf
from snat_exporter.collectors.conntrack.cilium import MAP_DIR, TUPLE_F_IN, TUPLE_F_OUT, V4, Layout

TCP, UDP, ICMP = 6, 17, 1


def require_root() -> None:
    """Creating maps and mounting a bpffs need root: fail loudly (never skip) without it."""
    if os.geteuid() != 0:
        pytest.fail("the BPF map tests create maps and mount a bpffs: run them as root")


@contextmanager
def bpffs() -> Iterator[Path]:
    """A fresh bpffs mounted on a temporary directory (root only), unmounted afterwards."""
    require_root()
    with tempfile.TemporaryDirectory(prefix="snat-bpffs-") as tmp:
        subprocess.run(["mount", "-t", "bpf", "bpf", tmp], check=True)
        try:
            yield Path(tmp)
        finally:
            subprocess.run(["umount", "-l", tmp], check=True)


def _addr(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def key(layout: Layout, saddr: str, daddr: str, sport: int, dport: int, proto: int, flags: int) -> bytes:
    # struct ipv4_ct_tuple field order: daddr, saddr, dport, sport, nexthdr, flags
    return layout.key.pack(_addr(daddr), _addr(saddr), dport.to_bytes(2, "big"), sport.to_bytes(2, "big"), proto, flags)


def value(layout: Layout, addr: str, port: int, created: int = 1, needs_ct: int = 0) -> bytes:
    head = struct.pack("=QQQQ", created, needs_ct, 0, 0)
    tail = layout.value.size - 32 - len(_addr(addr)) - 2
    return head + _addr(addr) + port.to_bytes(2, "big") + b"\0" * tail


class SnatMap:
    """One pinned SNAT map; ``flow`` writes a masqueraded flow as Cilium does (two entries)."""

    def __init__(self, root: Path, layout: Layout = V4, *, max_entries: int = 65536, value_size: int | None = None):
        self.layout = layout
        self.fd = bpf.map_create(
            bpf.BPF_MAP_TYPE_LRU_HASH,
            layout.key.size,
            value_size if value_size is not None else layout.value.size,
            max_entries,
            name=layout.map_name,
        )
        directory = root / MAP_DIR
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / layout.map_name
        bpf.obj_pin(self.fd, str(self.path))

    def flow(self, src: str, sport: int, dst: str, dport: int, proto: int, egress_ip: str, nat_port: int) -> None:
        needs_ct = int(src == egress_ip)  # the node's own flows also get a CT entry (needs_ct)
        bpf.update_elem(
            self.fd,
            key(self.layout, src, dst, sport, dport, proto, TUPLE_F_OUT),
            value(self.layout, egress_ip, nat_port, needs_ct=needs_ct),
        )
        bpf.update_elem(
            self.fd,
            key(self.layout, dst, egress_ip, dport, nat_port, proto, TUPLE_F_IN),
            value(self.layout, src, sport, needs_ct=needs_ct),
        )

    def raw(self, k: bytes, v: bytes) -> None:
        bpf.update_elem(self.fd, k, v)

    def close(self) -> None:
        os.close(self.fd)
