"""Builds ctnetlink messages the way the kernel lays them out (ctnetlink_fill_info), for parser fixtures."""

from __future__ import annotations

import ipaddress
import struct

NESTED = 0x8000


def attr(atype: int, payload: bytes, nested: bool = False, flag: bool = True) -> bytes:
    t = atype | (NESTED if nested and flag else 0)
    raw = struct.pack("<HH", 4 + len(payload), t) + payload
    return raw + b"\0" * (-len(raw) % 4)


def tuple_attr(
    which: int, src: str, dst: str, proto: int, sport: int, dport: int, *, flag: bool = True, zone: int | None = None
) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        ip = attr(1, s.packed) + attr(2, d.packed)
    else:
        ip = attr(3, s.packed) + attr(4, d.packed)
    if proto in (1, 58):  # ICMP: id, type, code
        l4 = attr(1, bytes([proto])) + attr(4, struct.pack("!H", sport)) + attr(5, b"\x08") + attr(6, b"\x00")
    else:
        l4 = attr(1, bytes([proto])) + attr(2, struct.pack("!H", sport)) + attr(3, struct.pack("!H", dport))
    body = attr(1, ip, True, flag) + attr(2, l4, True, flag)
    if zone is not None:
        body += attr(3, struct.pack("!H", zone))
    return attr(which, body, True, flag)


def ct_message(
    src: str,
    dst: str,
    proto: int,
    sport: int,
    dport: int,
    *,
    reply_src: str | None = None,
    reply_dst: str | None = None,
    reply_sport: int | None = None,
    reply_dport: int | None = None,
    status: int = 0x19E,  # SEEN_REPLY|ASSURED|CONFIRMED|SRC_NAT|SRC_NAT_DONE|DST_NAT_DONE, as the kernel sets
    tcp_state: int = 3,
    seq: int = 1,
    pid: int = 1,
    flag: bool = True,
    zone: int | None = None,
    secctx: bytes | None = None,
    flags: int = 0x2,
) -> bytes:
    rsrc = reply_src or dst
    rdst = reply_dst or src
    rsport = dport if reply_sport is None else reply_sport
    rdport = sport if reply_dport is None else reply_dport
    body = tuple_attr(1, src, dst, proto, sport, dport, flag=flag, zone=zone)
    body += tuple_attr(2, rsrc, rdst, proto, rsport, rdport, flag=flag, zone=zone)
    if zone is not None:
        body += attr(18, struct.pack("!H", zone))
    body += attr(3, struct.pack("!I", status))
    body += attr(8, struct.pack("!I", 0))  # mark
    if secctx is not None:
        body += attr(19, attr(1, secctx), True, flag)
    body += attr(12, struct.pack("!I", 0x1234))  # id
    body += attr(11, struct.pack("!I", 1))  # use
    body += attr(7, struct.pack("!I", 120))  # timeout
    if proto == 6:
        tcp = attr(1, bytes([tcp_state])) + attr(2, b"\x07") + attr(3, b"\x07")
        tcp += attr(4, b"\x23\x00") + attr(5, b"\x23\x00")
        body += attr(4, attr(1, tcp, True, flag), True, flag)
    family = 2 if ipaddress.ip_address(src).version == 4 else 10
    payload = struct.pack("<BBH", family, 0, 0) + body
    return struct.pack("<IHHII", 16 + len(payload), 0x100, flags, seq, pid) + payload


def done(seq: int = 1, pid: int = 1, error: int = 0, flags: int = 0x2) -> bytes:
    return struct.pack("<IHHIIi", 20, 3, flags, seq, pid, -error)


def error(code: int, seq: int = 1, pid: int = 1) -> bytes:
    request = struct.pack("<IHHII", 20, 0x101, 0x301, seq, 0)
    return struct.pack("<IHHIIi", 36, 2, 0, seq, pid, -code) + request


def stats_cpu(cpu: int, values: dict[int, int], seq: int = 1, pid: int = 1) -> bytes:
    body = b"".join(attr(k, struct.pack("!I", v)) for k, v in values.items())
    payload = struct.pack("<BBH", 0, 0, struct.unpack("<H", struct.pack("!H", cpu))[0]) + body
    return struct.pack("<IHHII", 16 + len(payload), 0x104, 0x2, seq, pid) + payload


def stats_global(entries: int, limit: int | None, seq: int = 1, pid: int = 1) -> bytes:
    body = attr(1, struct.pack("!I", entries)) + (attr(2, struct.pack("!I", limit)) if limit is not None else b"")
    payload = struct.pack("<BBH", 0, 0, 0) + body
    return struct.pack("<IHHII", 16 + len(payload), 0x105, 0, seq, pid) + payload
