"""Parsing without root: a ctnetlink dump captured on a real kernel, messages built like the kernel builds them,
and procfs text."""

from __future__ import annotations

import errno
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snat_exporter.collectors.conntrack.parse.netlink import (
    iter_messages,
    parse_ct_message,
    parse_stats_cpu,
    parse_stats_global,
)
from snat_exporter.collectors.conntrack.parse.procfs import (
    parse_proc_int,
    parse_proc_line,
    parse_proc_stat,
    parse_proc_table,
)
from snat_exporter.collectors.conntrack.parse.records import MalformedError, NetlinkErrorReply
from snat_exporter.collectors.conntrack.parse.table import TableParser
from tests.collectors.conntrack import nlbuild as nb

FIXTURES = Path(__file__).parent / "fixtures"


def captured() -> tuple[int, int, list[bytes]]:
    """The receive buffers of one real dump (Linux 6.18): 3 pod TCP flows, 1 node TCP flow, 2 UDP, 1 ICMP."""
    data = json.loads((FIXTURES / "dump_v4.json").read_text())
    raw = bytes.fromhex(data["hex"])
    chunks, off = [], 0
    while off < len(raw):
        n = int.from_bytes(raw[off : off + 4], "little")
        chunks.append(raw[off + 4 : off + 4 + n])
        off += 4 + n
    return data["seq"], data["pid"], chunks


def feed_all(parser: TableParser, chunks: list[bytes]) -> bool:
    done = False
    for chunk in chunks:
        buf = bytearray(chunk) + bytearray(64)  # a receive buffer is larger than what it holds
        done = parser.feed(buf, len(chunk))
    return done


CAPTURED_FLOWS = {
    ("10.244.0.10", 6, "192.0.2.100", 443, True, "established"): 3,
    ("192.0.2.1", 6, "192.0.2.100", 443, False, "established"): 1,
    ("10.244.0.11", 17, "192.0.2.100", 5353, True, ""): 2,
    ("10.244.0.10", 1, "192.0.2.100", 0, True, ""): 1,
}


def test_captured_dump_parses_exactly() -> None:
    seq, pid, chunks = captured()
    parser = TableParser(seq=seq, portid=pid)
    assert feed_all(parser, chunks)
    assert parser.entries == 7
    assert parser.flows() == CAPTURED_FLOWS
    assert parser.slow_entries == 7  # the ICMP flow does not fit the fast path: its buffer was walked


def test_captured_dump_without_icmp_takes_the_fast_path_with_the_same_result() -> None:
    seq, pid, chunks = captured()
    kept = bytearray()
    for chunk in chunks:
        for off, length, mtype, _flags, _seq, _pid in iter_messages(chunk, len(chunk)):
            msg = chunk[off : off + length]
            if mtype == 0x100 and parse_ct_message(chunk, off, length)[1] == 1:
                continue  # drop the ICMP flow
            kept += msg
    parser = TableParser(seq=seq, portid=pid)
    assert parser.feed(kept, len(kept))
    assert parser.slow_entries == 0
    expected = dict(CAPTURED_FLOWS)
    del expected[("10.244.0.10", 1, "192.0.2.100", 0, True, "")]
    assert parser.flows() == expected


FLOW = st.tuples(
    st.sampled_from(["10.244.0.10", "10.244.0.11", "192.0.2.1", "fd00::10", "2001:db8::1"]),
    st.sampled_from([6, 17, 1]),
    st.sampled_from(["192.0.2.100", "198.51.100.7", "2001:db8:1::443"]),
    st.integers(1, 65535),
    st.booleans(),
    st.integers(0, 9),
    st.booleans(),  # NLA_F_NESTED (Linux >= 5.2) or not
    st.sampled_from([None, 7]),  # a conntrack zone moves the attributes
)


def build(flow: tuple, seq: int, pid: int) -> tuple[bytes, tuple]:
    src, proto, dst, port, snat, state, flag, zone = flow
    if (":" in src) != (":" in dst):
        dst = "2001:db8:1::443" if ":" in src else "192.0.2.100"
    if proto == 1 and ":" in src:
        proto = 58
    status = 0x19E if snat else 0x18E  # IPS_SRC_NAT is 0x10
    msg = nb.ct_message(
        src, dst, proto, 40000, port, status=status, tcp_state=state, seq=seq, pid=pid, flag=flag, zone=zone
    )
    expect_port = 0 if proto in (1, 58) else port
    key = (src, proto, dst, expect_port, snat, nb_state(proto, state))
    return msg, key


def nb_state(proto: int, state: int) -> str:
    from snat_exporter.collectors.conntrack.parse.records import TCP_STATES

    return TCP_STATES[state] if proto == 6 else ""


@settings(max_examples=60, deadline=None)
@given(st.lists(FLOW, max_size=40), st.integers(1, 2**32 - 1), st.integers(1, 2**31 - 1))
def test_fast_path_and_walk_count_every_flow_exactly(flows: list[tuple], seq: int, pid: int) -> None:
    buf = bytearray()
    expected: Counter = Counter()
    for flow in flows:
        msg, key = build(flow, seq, pid)
        buf += msg
        expected[key] += 1
    buf += nb.done(seq, pid)
    parser = TableParser(seq=seq, portid=pid)
    assert parser.feed(buf, len(buf))
    assert parser.entries == len(flows)
    assert parser.flows() == expected


def test_ipv6_tcp_and_udp_take_the_fast_path() -> None:
    buf = nb.ct_message("fd00::10", "2001:db8::1", 6, 40000, 443, tcp_state=7) + nb.ct_message(
        "fd00::10", "2001:db8::1", 17, 40001, 53
    )
    parser = TableParser(seq=1, portid=1)
    assert parser.feed(bytearray(buf + nb.done()), len(buf) + 20)
    assert parser.slow_entries == 0
    assert parser.flows() == {
        ("fd00::10", 6, "2001:db8::1", 443, True, "time_wait"): 1,
        ("fd00::10", 17, "2001:db8::1", 53, True, ""): 1,
    }


def test_dnat_destination_is_the_real_peer() -> None:
    # A ClusterIP (10.0.0.10:443) DNATed to an external endpoint: the SNAT port is spent on the endpoint.
    msg = nb.ct_message("10.244.0.10", "10.0.0.10", 6, 40000, 443, reply_src="203.0.113.9", reply_sport=8443)
    parser = TableParser(seq=1, portid=1)
    parser.feed(bytearray(msg), len(msg))
    assert parser.flows() == {("10.244.0.10", 6, "203.0.113.9", 8443, True, "established"): 1}


def test_selinux_context_between_status_and_protoinfo_is_skipped() -> None:
    msg = nb.ct_message("10.244.0.10", "192.0.2.100", 6, 40000, 443, secctx=b"system_u:object_r:unlabeled_t:s0\0")
    parser = TableParser(seq=1, portid=1)
    parser.feed(bytearray(msg), len(msg))
    assert parser.flows() == {("10.244.0.10", 6, "192.0.2.100", 443, True, "established"): 1}


def test_a_chunk_without_done_is_not_the_end() -> None:
    msg = nb.ct_message("10.244.0.10", "192.0.2.100", 17, 40000, 53)
    parser = TableParser(seq=1, portid=1)
    assert not parser.feed(bytearray(msg), len(msg))
    assert parser.feed(bytearray(nb.done()), 20)


def test_permission_denied_reply_raises_with_errno() -> None:
    parser = TableParser(seq=1, portid=1)
    buf = bytearray(nb.error(errno.EPERM))
    with pytest.raises(NetlinkErrorReply) as info:
        parser.feed(buf, len(buf))
    assert info.value.errno == errno.EPERM
    assert "EPERM" in str(info.value)


def test_dump_ending_in_error_raises() -> None:
    msg = nb.ct_message("10.244.0.10", "192.0.2.100", 17, 40000, 53) + nb.done(error=errno.ENOMEM)
    with pytest.raises(NetlinkErrorReply) as info:
        TableParser(seq=1, portid=1).feed(bytearray(msg), len(msg))
    assert info.value.errno == errno.ENOMEM


def test_interrupted_dump_is_flagged() -> None:
    msg = nb.ct_message("10.244.0.10", "192.0.2.100", 17, 40000, 53) + nb.done(flags=0x12)
    parser = TableParser(seq=1, portid=1)
    assert parser.feed(bytearray(msg), len(msg))
    assert parser.interrupted


def test_truncated_message_is_malformed() -> None:
    msg = nb.ct_message("10.244.0.10", "192.0.2.100", 1, 40000, 53)
    with pytest.raises(MalformedError):
        TableParser(seq=1, portid=1).feed(bytearray(msg[:-8]), len(msg) - 8)


def test_stats_are_summed_over_cpus() -> None:
    buf = nb.stats_cpu(0, {2: 10, 9: 3, 10: 3, 11: 1}) + nb.stats_cpu(1, {2: 5, 9: 2, 10: 2, 14: 4}) + nb.done()
    totals, cpus, done = parse_stats_cpu(buf, len(buf))
    assert (cpus, done) == (2, True)
    assert totals == {"found": 15, "insert_failed": 5, "drop": 5, "early_drop": 1, "clash_resolve": 4}


def test_global_stats_with_and_without_the_limit() -> None:
    buf = nb.stats_global(87, 262144)
    assert parse_stats_global(buf, len(buf)) == {"entries": 87, "limit": 262144}
    buf = nb.stats_global(87, None)  # older kernels send only the count
    assert parse_stats_global(buf, len(buf)) == {"entries": 87}


# ---------------------------------------------------------------------------------------------------- procfs
PROC_STAT = """\
entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000057  00000001 00000010 00000000 00000002 00000000 00000000 00000000 00000000 00000003 00000003 00000000 00000000  00000000 00000000 00000000 00000000
00000057  00000000 000000a0 00000000 00000000 00000000 00000000 00000000 00000000 00000005 00000005 00000001 00000000  00000000 00000000 00000000 00000001
"""

PROC_STAT_OLD = """\
entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000002  00000000 00000004 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000001 00000000 00000000  00000000 00000000 00000000 00000000
"""


def test_proc_stat_is_hex_per_cpu_summed_by_column_name() -> None:
    totals, entries = parse_proc_stat(PROC_STAT)
    assert entries == 0x57
    assert totals == {
        "clash_resolve": 1,
        "found": 0xB0,
        "invalid": 2,
        "chain_toolong": 0,
        "insert_failed": 8,
        "drop": 8,
        "early_drop": 1,
        "error": 0,
        "search_restart": 1,
    }
    old, _ = parse_proc_stat(PROC_STAT_OLD)  # before Linux 5.9: no clashres column
    assert "clash_resolve" not in old and old["insert_failed"] == 1


def test_proc_stat_rejects_garbage() -> None:
    with pytest.raises(MalformedError):
        parse_proc_stat("entries found\nzz 1\n")
    with pytest.raises(MalformedError):
        parse_proc_stat("")


PROC_LINES = """\
ipv4     2 tcp      6 431997 ESTABLISHED src=10.244.0.10 dst=192.0.2.100 sport=41344 dport=443 src=192.0.2.100 dst=192.0.2.1 sport=443 dport=20029 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 119 TIME_WAIT src=192.0.2.1 dst=192.0.2.100 sport=60040 dport=443 packets=5 bytes=300 src=192.0.2.100 dst=192.0.2.1 sport=443 dport=60040 packets=4 bytes=200 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=10.244.0.11 dst=192.0.2.100 sport=34861 dport=5353 [UNREPLIED] src=192.0.2.100 dst=192.0.2.1 sport=5353 dport=20047 mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=10.244.0.10 dst=192.0.2.100 type=8 code=0 id=16962 src=192.0.2.100 dst=192.0.2.1 type=0 code=0 id=16962 mark=0 zone=0 use=2
ipv6     10 tcp      6 300 SYN_SENT src=fd00:0000:0000:0000:0000:0000:0000:0010 dst=2001:0db8:0000:0000:0000:0000:0000:0001 sport=40000 dport=443 [UNREPLIED] src=2001:0db8:0000:0000:0000:0000:0000:0001 dst=fd00:0000:0000:0000:0000:0000:0000:0010 sport=443 dport=40000 mark=0 zone=0 use=2
"""


def test_proc_table_lines_find_fields_by_name() -> None:
    flows = parse_proc_table(PROC_LINES.splitlines())
    assert flows == {
        ("10.244.0.10", 6, "192.0.2.100", 443, True, "established"): 1,
        ("192.0.2.1", 6, "192.0.2.100", 443, False, "time_wait"): 1,  # accounting fields do not shift anything
        ("10.244.0.11", 17, "192.0.2.100", 5353, True, ""): 1,
        ("10.244.0.10", 1, "192.0.2.100", 0, True, ""): 1,
        ("fd00::10", 6, "2001:db8::1", 443, False, "syn_sent"): 1,  # spelled like netlink's inet_ntop
    }


def test_proc_line_errors_and_blank_lines() -> None:
    assert parse_proc_line("   ") is None
    with pytest.raises(MalformedError):
        parse_proc_line("ipv4 2 tcp")
    with pytest.raises(MalformedError):
        parse_proc_line("ipv4 2 tcp 6 10 ESTABLISHED src=1.2.3.4 dst=5.6.7.8")
    assert parse_proc_int("262144\n") == 262144
    with pytest.raises(MalformedError):
        parse_proc_int("lots")
