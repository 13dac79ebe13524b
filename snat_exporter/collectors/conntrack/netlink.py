"""Socket I/O with the kernel, and nothing else: ctnetlink table dumps and stats requests, and rtnetlink's list
of local addresses. Parsing is in :mod:`parse`.

Every request opens its own socket: a dump that failed half-way leaves nothing behind for the next one, and
the socket's network namespace is the caller's (the collector runs in the host network namespace of a node).
These calls block; the collector runs them in a worker thread so /metrics stays responsive.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from snat_exporter.collectors.conntrack.parse.netlink import (
    IPCTNL_MSG_CT_GET,
    IPCTNL_MSG_CT_GET_STATS,
    IPCTNL_MSG_CT_GET_STATS_CPU,
    NFNL_SUBSYS_CTNETLINK,
    parse_addresses,
    parse_stats_cpu,
    parse_stats_global,
)
from snat_exporter.collectors.conntrack.parse.records import FlowKey, MalformedError
from snat_exporter.collectors.conntrack.parse.table import TableParser

NETLINK_NETFILTER = 12
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
RTM_GETADDR = 22

# The kernel caps one dump message batch (skb) at 32 KiB; twice that leaves room for any future growth, and
# MSG_TRUNC tells us if a batch ever did not fit.
RECV_SIZE = 1 << 16
RCVBUF = 1 << 20


class DumpInterrupted(Exception):
    """The kernel flagged the dump as inconsistent (NLM_F_DUMP_INTR): the table changed under it."""


@dataclass
class TableDump:
    flows: Counter[FlowKey]
    entries: int
    slow_entries: int  # entries that needed the attribute-by-attribute walk
    attempts: int


def _open(protocol: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _request(sock: socket.socket, msg_type: int, flags: int, seq: int, payload: bytes) -> None:
    sock.send(struct.pack("<IHHII", 16 + len(payload), msg_type, flags, seq, 0) + payload)


def _nfgenmsg(family: int) -> bytes:
    return struct.pack("<BBH", family, 0, 0)  # nfgen_family, version NFNETLINK_V0, res_id


def _recv(sock: socket.socket, view: memoryview) -> int:
    n = sock.recv_into(view, len(view), socket.MSG_TRUNC)
    if n > len(view):
        raise MalformedError(f"netlink message batch of {n} bytes did not fit the {len(view)}-byte buffer")
    return n


def _read_dump(sock: socket.socket, feed: Callable[[bytearray, int], bool]) -> None:
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    while not feed(buf, _recv(sock, view)):
        pass


def dump_table(*, retries: int = 2) -> TableDump:
    """Dump this network namespace's conntrack table (IPv4 and IPv6 in one pass: family AF_UNSPEC).

    Raises PermissionError without CAP_NET_ADMIN, DumpInterrupted if every attempt was interrupted, OSError
    (ENOBUFS...) or MalformedError otherwise."""
    attempt = 0
    while True:
        attempt += 1
        try:
            parser = _dump_once()
        except OSError as e:
            # ENOBUFS: the socket overran; a fresh dump on a fresh socket is the documented recovery.
            if e.errno == errno.ENOBUFS and attempt <= retries:
                continue
            raise _classified(e) from None
        if parser.interrupted and attempt <= retries:
            continue
        if parser.interrupted:
            raise DumpInterrupted(f"conntrack dump interrupted {attempt} times in a row")
        return TableDump(parser.flows(), parser.entries, parser.slow_entries, attempt)


def _dump_once() -> TableParser:
    with _open(NETLINK_NETFILTER) as sock:
        portid = sock.getsockname()[0]
        seq = random.getrandbits(32) or 1  # unguessable: TableParser counts our messages by (seq, portid)
        parser = TableParser(seq=seq, portid=portid)
        msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
        _request(sock, msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, _nfgenmsg(socket.AF_UNSPEC))
        _read_dump(sock, parser.feed)
        return parser


def read_stats() -> tuple[dict[str, int], int]:
    """The per-CPU conntrack statistics summed over CPUs (``conntrack -S``) -> (counters, cpus)."""
    with _open(NETLINK_NETFILTER) as sock:
        msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU
        _request(sock, msg_type, NLM_F_REQUEST | NLM_F_DUMP, 1, _nfgenmsg(socket.AF_UNSPEC))
        buf = bytearray(RECV_SIZE)
        view = memoryview(buf)
        totals: dict[str, int] = {}
        cpus = 0
        while True:
            try:
                part, n_cpus, done = parse_stats_cpu(buf, _recv(sock, view))
            except OSError as e:
                raise _classified(e) from None
            for name, value in part.items():
                totals[name] = totals.get(name, 0) + value
            cpus += n_cpus
            if done:
                return totals, cpus


def read_count() -> dict[str, int]:
    """The table's entry count and limit (``conntrack -C``): {"entries": n[, "limit": n]}."""
    with _open(NETLINK_NETFILTER) as sock:
        msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS
        _request(sock, msg_type, NLM_F_REQUEST, 1, _nfgenmsg(socket.AF_UNSPEC))
        buf = bytearray(RECV_SIZE)
        try:
            return parse_stats_global(buf, _recv(sock, memoryview(buf)))
        except OSError as e:
            raise _classified(e) from None


def local_addresses() -> set[str]:
    """Every address configured on this network namespace's interfaces (``ip addr``); needs no privilege."""
    with _open(socket.NETLINK_ROUTE) as sock:
        # struct ifaddrmsg: family, prefixlen, flags, scope, index
        _request(sock, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, struct.pack("<BBBBI", 0, 0, 0, 0, 0))
        buf = bytearray(RECV_SIZE)
        view = memoryview(buf)
        out: set[str] = set()
        while True:
            part, done = parse_addresses(buf, _recv(sock, view))
            out |= part
            if done:
                return out


def _classified(e: OSError) -> OSError:
    """EPERM/EACCES as PermissionError with the reason spelled out; other errors unchanged."""
    if e.errno in (errno.EPERM, errno.EACCES):
        return PermissionError(e.errno, f"{os.strerror(e.errno)}: reading conntrack over netlink needs CAP_NET_ADMIN")
    return e
