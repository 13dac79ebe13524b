"""The parser of one ctnetlink table dump (:class:`TableParser`), with its fast path.

Speed (200,000 flows must parse in well under the time ``conntrack -L`` needs to print them) comes from
:class:`TableParser`'s fast path: a compiled regular expression pulls the few fields we need out of a whole
receive buffer in C, and ``Counter.update`` counts the resulting tuples in C, so no Python code runs per flow.
The fast path only accepts the exact attribute layout the kernel writes for a TCP or UDP flow in the default
zone; each buffer is checked (messages in the buffer == fast matches) and any buffer with another shape (ICMP,
a zone, an offloaded flow, a future kernel) is walked attribute by attribute instead, so the result is exact.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass, field

from snat_exporter.collectors.conntrack.parse.netlink import (
    CT_NEW,
    IPS_SRC_NAT,
    NLM_F_DUMP_INTR,
    NLMSG_DONE,
    NLMSG_ERROR,
    errno_text,
    error_code,
    ip_text,
    iter_messages,
    parse_ct_message,
)
from snat_exporter.collectors.conntrack.parse.records import TCP_STATES, FlowKey, NetlinkErrorReply

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
        return (
            ip_text(src),
            6,
            ip_text(dst),
            int.from_bytes(port, "big"),
            bool(status[0] & IPS_SRC_NAT),
            _state(state[0]),
        )
    return ip_text(src), 17, ip_text(dst), int.from_bytes(port, "big"), bool(status[0] & IPS_SRC_NAT), ""


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
            raise NetlinkErrorReply(code, f"conntrack dump ended with {errno_text(code)}")

    @staticmethod
    def _check_error(buf: bytes | bytearray | memoryview, off: int, length: int) -> None:
        code = error_code(buf, off, length)
        if code:
            raise NetlinkErrorReply(code, f"conntrack dump refused: {errno_text(code)}")

    def flows(self) -> Counter[FlowKey]:
        """All flow keys of the dump with their counts (fast and walked ones merged)."""
        out: Counter[FlowKey] = Counter(self.slow)
        for key, count in self.fast.items():
            out[decode_fast_key(key)] += count
        return out
