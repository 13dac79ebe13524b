"""Pure parsing of what the kernel gives us: ctnetlink bytes and procfs text -> flow keys and counters.

No I/O here, so everything is tested with byte and text fixtures without root.

A flow is reduced at once to a :data:`FlowKey` ``(source ip, protocol, destination ip, destination port, snat,
tcp state)`` and counted, because the exporter never needs a single flow, only how many share a key. The
destination is the *reply* tuple's source: the peer that really answers, after any DNAT (a ClusterIP or a
NodePort rewritten to an endpoint), which is what an Azure SNAT port is spent on.

Speed (200,000 flows must parse in well under the time ``conntrack -L`` needs to print them) comes from
:class:`TableParser`'s fast path: a compiled regular expression pulls the few fields we need out of a whole
receive buffer in C, and ``Counter.update`` counts the resulting tuples in C, so no Python code runs per flow.
The fast path only accepts the exact attribute layout the kernel writes for a TCP or UDP flow in the default
zone; each buffer is checked (messages in the buffer == fast matches) and any buffer with another shape (ICMP,
a zone, an offloaded flow, a future kernel) is walked attribute by attribute instead, so the result is exact.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

# (source ip, protocol number, destination ip, destination port (0 when the protocol has none), source NAT
# applied, TCP state in lower case or "")
FlowKey = tuple[str, int, str, int, bool, str]

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

# enum tcp_conntrack, lower-cased for label values.
TCP_STATES = (
    "none",
    "syn_sent",
    "syn_recv",
    "established",
    "fin_wait",
    "close_wait",
    "last_ack",
    "time_wait",
    "close",
    "syn_sent2",
)

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6", 132: "sctp", 136: "udplite"}

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

# /proc/net/stat/nf_conntrack column -> our counter name (older kernels name some columns differently).
PROC_STAT_COLUMNS = {
    "found": "found",
    "invalid": "invalid",
    "insert_failed": "insert_failed",
    "drop": "drop",
    "early_drop": "early_drop",
    "icmp_error": "error",
    "search_restart": "search_restart",
    "clashres": "clash_resolve",
    "chainlength": "chain_toolong",
}


class MalformedError(ValueError):
    """The kernel's answer does not parse: truncated message or attribute."""


class NetlinkErrorReply(OSError):
    """An NLMSG_ERROR (or a failed NLMSG_DONE) with a negative errno."""


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


def _ip(raw: bytes) -> str:
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
    return _ip(orig[0]), proto, _ip(reply[0]), reply[3], bool(status & IPS_SRC_NAT), state


# ------------------------------------------------------------------------------------------------ fast path
# The exact bytes the kernel writes (ctnetlink_fill_info) for the two tuples of a TCP or UDP flow in the
# default zone, then CTA_STATUS right after them, then for TCP the CTA_PROTOINFO nest a few attributes later
# (after mark, secctx, id, use and timeout; 100 bytes is ample and cannot reach the next message's).
# Groups: orig source ip, "\x06" if TCP, reply source ip (destination), reply source port, low status byte,
# TCP state. Nested attributes carry NLA_F_NESTED (0x80 in the high type byte) since Linux 5.2, not before.
_N = b"[\\x00\\x80]"
_PROTO_ORIG = rb"\x1c\x00\x02" + _N + rb"\x05\x00\x01\x00(?:(\x06)|\x11)...\x06\x00\x02\x00....\x06\x00\x03\x00...."
_PROTO_REPLY = rb"\x1c\x00\x02" + _N + rb"\x05\x00\x01\x00[\x06\x11]...\x06\x00\x02\x00(..)..\x06\x00\x03\x00...."
_TAIL = (
    rb"\x08\x00\x03\x00...(.)"
    rb"(?(2).{0,100}?\x30\x00\x04" + _N + rb"\x2c\x00\x01" + _N + rb"\x05\x00\x01\x00(.))"
)
FAST_V4 = re.compile(
    rb"\x34\x00\x01" + _N + rb"\x14\x00\x01" + _N + rb"\x08\x00\x01\x00(....)\x08\x00\x02\x00...." + _PROTO_ORIG
    + rb"\x34\x00\x02" + _N + rb"\x14\x00\x01" + _N + rb"\x08\x00\x01\x00(....)\x08\x00\x02\x00...." + _PROTO_REPLY
    + _TAIL,
    re.DOTALL,
)  # fmt: skip
FAST_V6 = re.compile(
    rb"\x4c\x00\x01" + _N + rb"\x2c\x00\x01" + _N + rb"\x14\x00\x03\x00(.{16})\x14\x00\x04\x00.{16}" + _PROTO_ORIG
    + rb"\x4c\x00\x02" + _N + rb"\x2c\x00\x01" + _N + rb"\x14\x00\x03\x00(.{16})\x14\x00\x04\x00.{16}" + _PROTO_REPLY
    + _TAIL,
    re.DOTALL,
)  # fmt: skip

FastKey = tuple[bytes, bytes, bytes, bytes, bytes, bytes]


def decode_fast_key(key: FastKey) -> FlowKey:
    src, tcp, dst, port, status, state = key
    if tcp:
        return _ip(src), 6, _ip(dst), int.from_bytes(port, "big"), bool(status[0] & IPS_SRC_NAT), _state(state[0])
    return _ip(src), 17, _ip(dst), int.from_bytes(port, "big"), bool(status[0] & IPS_SRC_NAT), ""


def _state(value: int) -> str:
    return TCP_STATES[value] if value < len(TCP_STATES) else "unknown"


@dataclass
class TableParser:
    """Consumes the receive buffers of one ctnetlink table dump. ``feed`` returns True once NLMSG_DONE arrived.

    ``seq`` and ``portid`` identify our dump's messages: the message count of a buffer is the number of
    CT_NEW headers carrying them (a random ``seq`` cannot be forged by flow data)."""

    seq: int
    portid: int
    fast: Counter[FastKey] = field(default_factory=Counter)
    slow: Counter[FlowKey] = field(default_factory=Counter)
    entries: int = 0
    slow_entries: int = 0
    interrupted: bool = False
    done: bool = False

    def __post_init__(self) -> None:
        self._seqpid = struct.pack("<II", self.seq, self.portid)

    def feed(self, buf: bytes | bytearray | memoryview, n: int) -> bool:
        seqpid = self._seqpid
        # Every message of our dump carries (seq, portid) at offset 8 of its header; NLMSG_ERROR can only be
        # the first message of a buffer and NLMSG_DONE only the last, so the flow messages are the rest.
        count = buf.count(seqpid, 0, n) if isinstance(buf, bytes | bytearray) else bytes(buf[:n]).count(seqpid)
        if n >= 16:
            length, mtype = struct.unpack_from("<IH", buf, 0)
            if mtype == NLMSG_ERROR:
                self._check_error(buf, 0, length)
                return self._walk(buf, n)
        done_at = -1
        if n >= 20 and buf[n - 12 : n - 4] == seqpid:
            length, mtype, mflags = struct.unpack_from("<IHH", buf, n - 20)
            if length == 20 and mtype == NLMSG_DONE:
                done_at = n - 20
                count -= 1
        matched = FAST_V4.findall(buf, 0, n)
        if len(matched) != count:
            v6 = FAST_V6.findall(buf, 0, n)
            if len(matched) + len(v6) != count:
                return self._walk(buf, n)
            self.fast.update(v6)
        self.fast.update(matched)
        self.entries += count
        if done_at >= 0:
            self._finish(buf, done_at, 20, mflags)
        return self.done

    def _walk(self, buf: bytes | bytearray | memoryview, n: int) -> bool:
        for off, length, mtype, flags, seq, _pid in iter_messages(buf, n):
            if seq != self.seq:
                continue  # not ours (cannot happen on a private socket; cheap to ignore)
            if mtype == CT_NEW:
                self.slow[parse_ct_message(buf, off, length)] += 1
                self.entries += 1
                self.slow_entries += 1
                if flags & NLM_F_DUMP_INTR:
                    self.interrupted = True
            elif mtype == NLMSG_DONE:
                self._finish(buf, off, length, flags)
            elif mtype == NLMSG_ERROR:
                self._check_error(buf, off, length)
        return self.done

    def _finish(self, buf: bytes | bytearray | memoryview, off: int, length: int, flags: int) -> None:
        self.done = True
        if flags & NLM_F_DUMP_INTR:
            self.interrupted = True
        code = error_code(buf, off, length)
        if code:
            raise NetlinkErrorReply(code, f"conntrack dump ended with {_errname(code)}")

    @staticmethod
    def _check_error(buf: bytes | bytearray | memoryview, off: int, length: int) -> None:
        code = error_code(buf, off, length)
        if code:
            raise NetlinkErrorReply(code, f"conntrack dump refused: {_errname(code)}")

    def flows(self) -> Counter[FlowKey]:
        """All flow keys of the dump with their counts (fast and walked ones merged)."""
        out: Counter[FlowKey] = Counter(self.slow)
        for key, count in self.fast.items():
            out[decode_fast_key(key)] += count
        return out


def _errname(code: int) -> str:
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
                raise NetlinkErrorReply(code, f"conntrack stats refused: {_errname(code)}")
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
                raise NetlinkErrorReply(code, f"conntrack count refused: {_errname(code)}")
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
                raise NetlinkErrorReply(code, f"address dump refused: {_errname(code)}")
        elif mtype == RTM_NEWADDR:
            found: dict[int, bytes] = {}
            for atype, s, e in iter_attrs(buf, off + 16 + 8, off + length):
                if atype in (IFA_ADDRESS, IFA_LOCAL) and e - s in (4, 16):
                    found[atype] = bytes(buf[s:e])
            raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
            if raw is not None:
                out.add(_ip(raw))
    return out, done


# ---------------------------------------------------------------------------------------------------- procfs
def parse_proc_stat(text: str) -> tuple[dict[str, int], int | None]:
    """/proc/net/stat/nf_conntrack (a header, then one hex row per CPU) -> (summed counters, entries)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        raise MalformedError("empty /proc/net/stat/nf_conntrack")
    header = lines[0]
    totals: dict[str, int] = {}
    entries: int | None = None
    for row in lines[1:]:
        if len(row) != len(header):
            raise MalformedError(f"/proc/net/stat/nf_conntrack row has {len(row)} columns, header {len(header)}")
        for column, raw in zip(header, row, strict=True):
            try:
                value = int(raw, 16)
            except ValueError:
                raise MalformedError(f"/proc/net/stat/nf_conntrack: {column}={raw!r} is not hex") from None
            if column == "entries":
                entries = value  # the namespace's count, repeated on every CPU row
                continue
            name = PROC_STAT_COLUMNS.get(column)
            if name is not None:
                totals[name] = totals.get(name, 0) + value
    return totals, entries


def parse_proc_int(text: str) -> int:
    """A one-number sysctl file (nf_conntrack_count, nf_conntrack_max)."""
    try:
        return int(text.strip())
    except ValueError:
        raise MalformedError(f"expected a number, got {text.strip()[:40]!r}") from None


_V6_CACHE: dict[str, str] = {}


def _proc_ip(text: str) -> str:
    # procfs prints IPv6 addresses uncompressed; labels must match the netlink (inet_ntop) spelling.
    if ":" not in text:
        return text
    out = _V6_CACHE.get(text)
    if out is None:
        if len(_V6_CACHE) > 65536:
            _V6_CACHE.clear()
        out = _V6_CACHE[text] = str(ipaddress.IPv6Address(text))
    return out


def parse_proc_line(line: str) -> FlowKey | None:
    """One line of /proc/net/nf_conntrack -> its flow key; None for a blank line.

    Fields are found by name, not position: accounting (``packets= bytes=``), zones and labels move them."""
    fields = line.split()
    if not fields:
        return None
    if len(fields) < 6:
        raise MalformedError(f"short /proc/net/nf_conntrack line: {line[:80]!r}")
    try:
        proto = int(fields[3])
    except ValueError:
        raise MalformedError(f"bad protocol number in {line[:80]!r}") from None
    state = ""
    src: list[str] = []
    dst: list[str] = []
    sport: list[int] = []
    dport: list[int] = []
    for token in fields[5:]:
        key, sep, value = token.partition("=")
        if not sep:
            if proto == 6 and not state and not token.startswith("["):
                state = token.lower()
            continue
        if key == "src":
            src.append(value)
        elif key == "dst":
            dst.append(value)
        elif key == "sport":
            sport.append(_proc_port(value, line))
        elif key == "dport":
            dport.append(_proc_port(value, line))
    if len(src) < 2 or len(dst) < 2:
        raise MalformedError(f"/proc/net/nf_conntrack line without both tuples: {line[:80]!r}")
    orig_sport = sport[0] if sport else 0
    reply_sport = sport[1] if len(sport) > 1 else 0
    reply_dport = dport[1] if len(dport) > 1 else 0
    # procfs has no status bits: source NAT is visible as a reply tuple that does not come back to the source.
    snat = dst[1] != src[0] or reply_dport != orig_sport
    try:
        return _proc_ip(src[0]), proto, _proc_ip(src[1]), reply_sport, snat, state
    except ValueError:  # an address procfs would never print: the line is damaged, not the parser
        raise MalformedError(f"bad address in /proc/net/nf_conntrack line {line[:80]!r}") from None


def _proc_port(value: str, line: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MalformedError(f"bad port {value[:20]!r} in /proc/net/nf_conntrack line {line[:80]!r}") from None


def parse_proc_table(lines: Iterator[str] | list[str]) -> Counter[FlowKey]:
    out: Counter[FlowKey] = Counter()
    for line in lines:
        key = parse_proc_line(line)
        if key is not None:
            out[key] += 1
    return out
