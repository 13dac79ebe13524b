"""Decoding ctnetlink and rtnetlink replies: the netlink message and attribute walk, one conntrack entry attribute by
attribute, the conntrack statistics and the local address dump. Bytes in, records out; the socket I/O is
:mod:`snat_exporter.collectors.conntrack.netlink`'s.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from snat_exporter.collectors.conntrack.parse.records import (
    TCP_STATES,
    FlowKey,
    MalformedError,
    NetlinkErrorReply,
)

# ---------------------------------------------------------------------------------------- netlink constants
NLMSG_HDR = struct.Struct("<IHHII")  # len, type, flags, seq, pid
NLA_HDR = struct.Struct("<HH")
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_DUMP_INTR = 0x10
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_GET_STATS_CPU = 4
IPCTNL_MSG_CT_GET_STATS = 5
CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
CT_STATS_CPU = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU
CT_STATS = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS
NFGENMSG_LEN = 4

CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_STATUS = 3
CTA_PROTOINFO = 4
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTOINFO_TCP = 1
CTA_PROTOINFO_TCP_STATE = 1
IPS_SRC_NAT = 1 << 4

RTM_NEWADDR = 20
IFA_ADDRESS = 1
IFA_LOCAL = 2

# enum ctattr_stats_cpu -> our counter names (only the ones the kernel still maintains).
STATS_CPU_ATTRS = {
    2: "found",
    4: "invalid",
    9: "insert_failed",
    10: "drop",
    11: "early_drop",
    12: "error",
    13: "search_restart",
    14: "clash_resolve",
    15: "chain_toolong",
}
STATS_GLOBAL_ENTRIES = 1
STATS_GLOBAL_MAX_ENTRIES = 2


# -------------------------------------------------------------------------------------------- generic walk
def iter_messages(buf: bytes | bytearray | memoryview, end: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(offset, length, type, flags, seq, pid) of each netlink message in ``buf[:end]``."""
    off = 0
    while off + 16 <= end:
        length, mtype, flags, seq, pid = NLMSG_HDR.unpack_from(buf, off)
        if length < 16 or off + length > end:
            raise MalformedError(f"netlink message of length {length} at {off} overruns the {end}-byte buffer")
        yield off, length, mtype, flags, seq, pid
        off += (length + 3) & ~3
    if off < end and any(buf[off:end]):
        raise MalformedError(f"{end - off} trailing bytes after the last netlink message")


def iter_attrs(buf: bytes | bytearray | memoryview, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in ``buf[start:end]``."""
    off = start
    while off + 4 <= end:
        length, atype = NLA_HDR.unpack_from(buf, off)
        if length < 4 or off + length > end:
            raise MalformedError(f"attribute {atype & NLA_TYPE_MASK} of length {length} overruns its parent")
        yield atype & NLA_TYPE_MASK, off + 4, off + length
        off += (length + 3) & ~3


def error_code(buf: bytes | bytearray | memoryview, off: int, length: int) -> int:
    """The errno of an NLMSG_ERROR / NLMSG_DONE payload (0 = success / ACK)."""
    if length < 20:
        return 0
    (code,) = struct.unpack_from("<i", buf, off + 16)
    return -code


def ip_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _tuple(buf: bytes | bytearray | memoryview, start: int, end: int) -> tuple[bytes, bytes, int, int, int]:
    """(src ip, dst ip, protocol, src port, dst port) of a CTA_TUPLE_* payload."""
    src = dst = b""
    proto = sport = dport = 0
    for atype, s, e in iter_attrs(buf, start, end):
        if atype == CTA_TUPLE_IP:
            for itype, a, b in iter_attrs(buf, s, e):
                if itype in (CTA_IP_V4_SRC, CTA_IP_V6_SRC):
                    src = bytes(buf[a:b])
                elif itype in (CTA_IP_V4_DST, CTA_IP_V6_DST):
                    dst = bytes(buf[a:b])
        elif atype == CTA_TUPLE_PROTO:
            for ptype, a, b in iter_attrs(buf, s, e):
                if ptype == CTA_PROTO_NUM and b > a:
                    proto = buf[a]
                elif ptype == CTA_PROTO_SRC_PORT and b - a >= 2:
                    sport = int.from_bytes(buf[a : a + 2], "big")
                elif ptype == CTA_PROTO_DST_PORT and b - a >= 2:
                    dport = int.from_bytes(buf[a : a + 2], "big")
    if len(src) not in (4, 16) or len(dst) not in (4, 16):
        raise MalformedError("conntrack tuple without source and destination address")
    return src, dst, proto, sport, dport


def parse_ct_message(buf: bytes | bytearray | memoryview, off: int, length: int) -> FlowKey:
    """One IPCTNL_MSG_CT_NEW message (any protocol, zone or layout) -> its flow key."""
    orig = reply = None
    status = 0
    tcp_state = -1
    for atype, s, e in iter_attrs(buf, off + 16 + NFGENMSG_LEN, off + length):
        if atype == CTA_TUPLE_ORIG:
            orig = _tuple(buf, s, e)
        elif atype == CTA_TUPLE_REPLY:
            reply = _tuple(buf, s, e)
        elif atype == CTA_STATUS and e - s >= 4:
            status = int.from_bytes(buf[s : s + 4], "big")
        elif atype == CTA_PROTOINFO:
            for ptype, a, b in iter_attrs(buf, s, e):
                if ptype == CTA_PROTOINFO_TCP:
                    for ttype, c, d in iter_attrs(buf, a, b):
                        if ttype == CTA_PROTOINFO_TCP_STATE and d > c:
                            tcp_state = buf[c]
    if orig is None or reply is None:
        raise MalformedError("conntrack entry without both tuples")
    proto = orig[2]
    state = ""
    if proto == 6:
        state = TCP_STATES[tcp_state] if 0 <= tcp_state < len(TCP_STATES) else "unknown"
    return ip_text(orig[0]), proto, ip_text(reply[0]), reply[3], bool(status & IPS_SRC_NAT), state


def errno_text(code: int) -> str:
    import errno
    import os

    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


# ----------------------------------------------------------------------------------------- stats and addrs
def parse_stats_cpu(buf: bytes | bytearray | memoryview, n: int) -> tuple[dict[str, int], int, bool]:
    """IPCTNL_MSG_CT_GET_STATS_CPU replies (one message per CPU) -> (summed counters, CPUs seen, done)."""
    totals: dict[str, int] = {}
    cpus = 0
    done = False
    for off, length, mtype, _flags, _seq, _pid in iter_messages(buf, n):
        if mtype == NLMSG_ERROR:
            code = error_code(buf, off, length)
            if code:
                raise NetlinkErrorReply(code, f"conntrack stats refused: {errno_text(code)}")
        elif mtype == NLMSG_DONE:
            done = True
        elif mtype == CT_STATS_CPU:
            cpus += 1
            for atype, s, e in iter_attrs(buf, off + 16 + NFGENMSG_LEN, off + length):
                name = STATS_CPU_ATTRS.get(atype)
                if name is not None and e - s >= 4:
                    totals[name] = totals.get(name, 0) + int.from_bytes(buf[s : s + 4], "big")
    return totals, cpus, done


def parse_stats_global(buf: bytes | bytearray | memoryview, n: int) -> dict[str, int]:
    """The IPCTNL_MSG_CT_GET_STATS reply -> {"entries": n, "limit": n} (limit only on kernels that send it)."""
    out: dict[str, int] = {}
    for off, length, mtype, _flags, _seq, _pid in iter_messages(buf, n):
        if mtype == NLMSG_ERROR:
            code = error_code(buf, off, length)
            if code:
                raise NetlinkErrorReply(code, f"conntrack count refused: {errno_text(code)}")
        elif mtype == CT_STATS:
            for atype, s, e in iter_attrs(buf, off + 16 + NFGENMSG_LEN, off + length):
                if e - s >= 4 and atype == STATS_GLOBAL_ENTRIES:
                    out["entries"] = int.from_bytes(buf[s : s + 4], "big")
                elif e - s >= 4 and atype == STATS_GLOBAL_MAX_ENTRIES:
                    out["limit"] = int.from_bytes(buf[s : s + 4], "big")
    return out


def parse_addresses(buf: bytes | bytearray | memoryview, n: int) -> tuple[set[str], bool]:
    """RTM_NEWADDR dump replies -> (local addresses, done)."""
    out: set[str] = set()
    done = False
    for off, length, mtype, _flags, _seq, _pid in iter_messages(buf, n):
        if mtype == NLMSG_DONE:
            done = True
        elif mtype == NLMSG_ERROR:
            code = error_code(buf, off, length)
            if code:
                raise NetlinkErrorReply(code, f"address dump refused: {errno_text(code)}")
        elif mtype == RTM_NEWADDR:
            found: dict[int, bytes] = {}
            for atype, s, e in iter_attrs(buf, off + 16 + 8, off + length):
                if atype in (IFA_ADDRESS, IFA_LOCAL) and e - s in (4, 16):
                    found[atype] = bytes(buf[s:e])
            raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
            if raw is not None:
                out.add(ip_text(raw))
    return out, done
