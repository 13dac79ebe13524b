"""Hypothesis fuzzing of every parser that reads outside data: ctnetlink / rtnetlink messages, procfs text, Azure
JSON (getBatch's raw JSON, the Metrics List SDK models, the ARM bodies discovery reads), and the config and
web-config loaders.

Each parser may only fail with its documented exception (MalformedError / NetlinkErrorReply, MalformedResponse /
the SDK's DeserializationError, ConfigError); anything else would be a crash of a collector run. Every example
runs under a deadline (no hang) and with tracemalloc watching its peak allocation (bounded memory: a length
field claiming gigabytes must not allocate them). Inputs are bounded in size; the whole file runs in seconds.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import DeserializationError
from azure.mgmt.monitor.models import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snat_exporter.collectors.azure import discovery
from snat_exporter.collectors.azure.parse import MalformedResponse, parse_response
from snat_exporter.collectors.azure.parse_batch import parse_batch, parse_metrics_json
from snat_exporter.collectors.conntrack.parse.netlink import parse_addresses, parse_stats_cpu, parse_stats_global
from snat_exporter.collectors.conntrack.parse.procfs import parse_proc_int, parse_proc_stat, parse_proc_table
from snat_exporter.collectors.conntrack.parse.records import MalformedError, NetlinkErrorReply
from snat_exporter.collectors.conntrack.parse.table import TableParser
from snat_exporter.settings import ConfigError
from tests.collectors.conntrack import nlbuild as nb
from tests.conftest import azure_example

FUZZ = settings(max_examples=150, deadline=500, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
MAX_PEAK = 8 * 1024 * 1024  # bytes one parse may allocate at its peak, for inputs of at most ~64 KiB

NETLINK_ERRORS = (MalformedError, NetlinkErrorReply)


@contextmanager
def bounded_memory(limit: int = MAX_PEAK) -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"a parse allocated {peak / 1e6:.1f} MB at its peak"


def only(errors: tuple[type[BaseException], ...], parse: Callable[[], Any]) -> Any:
    """Run ``parse``; its documented errors are fine, anything else fails the test (re-raised by pytest)."""
    with bounded_memory():
        try:
            return parse()
        except errors:
            return None


# ------------------------------------------------------------------------------------------------ netlink

SEQ, PID = 7, 4242
CT_TYPE = (1 << 8) | 0  # NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW (what a dump returns)


def _attrs(depth: int = 0) -> st.SearchStrategy[bytes]:
    """Netlink attributes: valid-looking (type, nested flag, payload) with random lengths, sometimes nested."""
    leaf = st.builds(lambda t, p: nb.attr(t, p), st.integers(0, 20), st.binary(max_size=20))
    if depth >= 3:
        return st.lists(leaf, max_size=6).map(b"".join)
    nested = st.builds(lambda t, p: nb.attr(t, p, nested=True), st.integers(0, 20), _attrs(depth + 1))
    return st.lists(st.one_of(leaf, nested), max_size=6).map(b"".join)


@st.composite
def ct_messages(draw: st.DrawFn) -> bytes:
    """One nlmsghdr + nfgenmsg + attributes, with our seq/pid most of the time so the parser looks inside."""
    msg_type = draw(st.sampled_from([CT_TYPE, 2, 3, 0x10, draw(st.integers(0, 0xFFFF))]))  # NLMSG_ERROR, DONE
    flags = draw(st.sampled_from([0x2, 0x10, 0x12, 0, draw(st.integers(0, 0xFFFF))]))  # MULTI, DUMP_INTR
    seq = draw(st.sampled_from([SEQ, draw(st.integers(0, 2**32 - 1))]))
    pid = draw(st.sampled_from([PID, draw(st.integers(0, 2**32 - 1))]))
    body = struct.pack("<BBH", draw(st.sampled_from([2, 10, 0])), 0, 0) + draw(_attrs())
    length = 16 + len(body)
    if draw(st.booleans()):
        length = draw(st.integers(0, 2**32 - 1))  # a lying length field
    raw = struct.pack("<IHHII", length, msg_type, flags, seq, pid) + body
    return raw + b"\0" * (-len(raw) % 4)


def real_flow() -> bytes:
    return nb.ct_message("10.244.0.10", "192.0.2.100", 6, 40000, 443, seq=SEQ, pid=PID)


@st.composite
def mutated(draw: st.DrawFn, base: Callable[[], bytes]) -> bytes:
    """A valid message with bytes flipped, cut or appended: the kind of damage a parser meets in the wild."""
    raw = bytearray(base())
    for _ in range(draw(st.integers(1, 8))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(raw)))
    return bytes(raw[:cut]) + draw(st.binary(max_size=32))


netlink_batches = st.one_of(
    st.lists(ct_messages(), min_size=1, max_size=8).map(b"".join),
    st.lists(mutated(real_flow), min_size=1, max_size=4).map(b"".join),
    st.binary(max_size=512),
)


def feed(parse: Callable[[bytearray, int], Any], data: bytes) -> None:
    buf = bytearray(data) + bytearray(64)  # a receive buffer is larger than what it holds
    only(NETLINK_ERRORS, lambda: parse(buf, len(data)))


@FUZZ
@given(netlink_batches)
def test_conntrack_dump_messages(data: bytes) -> None:
    parser = TableParser(seq=SEQ, portid=PID)

    def parse(buf: bytearray, n: int) -> Any:
        parser.feed(buf, n)
        return parser.flows()

    feed(parse, data)


@FUZZ
@given(netlink_batches)
def test_conntrack_stats_count_and_address_replies(data: bytes) -> None:
    for parse in (parse_stats_cpu, parse_stats_global, parse_addresses):
        feed(parse, data)


def test_a_length_field_claiming_4_gib_allocates_nothing_big() -> None:
    header = struct.pack("<IHHII", 0xFFFFFFF0, CT_TYPE, 0x2, SEQ, PID) + b"\0" * 4
    with pytest.raises(MalformedError):
        with bounded_memory(1024 * 1024):
            TableParser(seq=SEQ, portid=PID).feed(bytearray(header), len(header))


# ------------------------------------------------------------------------------------------------- procfs

PROC_LINE = (
    "ipv4     2 tcp      6 431997 ESTABLISHED src=10.244.0.10 dst=192.0.2.100 sport=41344 dport=443 "
    "src=192.0.2.100 dst=192.0.2.1 sport=443 dport=20029 [ASSURED] mark=0 zone=0 use=2"
)
PROC_STAT = (
    "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error "
    "expect_new expect_create expect_delete search_restart\n"
    "00000040  00000000 00000aa1 00000000 00000003 00000000 00000000 00000000 00000000 00000022 00000022 00000000 "
    "00000000 00000000 00000000 00000000 00000000\n"
)

proc_text = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.sampled_from(PROC_LINE.split() + ["=", "src=", "[UNREPLIED]", "ipv6", "10", "\n", "zz"]), max_size=40
    ).map(" ".join),
    st.builds(lambda cut, junk: PROC_LINE[:cut] + junk, st.integers(0, len(PROC_LINE)), st.text(max_size=30)),
)


@FUZZ
@given(st.lists(proc_text, max_size=20))
def test_proc_conntrack_table(lines: list[str]) -> None:
    only((MalformedError,), lambda: parse_proc_table(lines))


@FUZZ
@given(st.one_of(st.text(max_size=600), st.builds(lambda cut, junk: PROC_STAT[:cut] + junk,
                                                  st.integers(0, len(PROC_STAT)), st.text(max_size=40))))  # fmt: skip
def test_proc_stat_and_sysctl_text(text: str) -> None:
    only((MalformedError,), lambda: parse_proc_stat(text))
    only((MalformedError,), lambda: parse_proc_int(text))


# -------------------------------------------------------------------------------------------------- Azure

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)


@st.composite
def mutated_json(draw: st.DrawFn, base: Any) -> Any:
    """A real Azure answer with one node somewhere replaced by arbitrary JSON."""
    doc = json.loads(json.dumps(base))
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in node:
                paths.append((node, k))
                walk(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                paths.append((node, i))
                walk(node[i])

    walk(doc)
    for _ in range(draw(st.integers(1, 3))):
        if paths:
            parent, key = paths[draw(st.integers(0, len(paths) - 1))]
            parent[key] = draw(json_values)
    return doc


AGGREGATIONS = st.sampled_from(["average", "total", "maximum", "count", "bogus"])


@FUZZ
@given(st.data())
def test_get_batch_json(data: st.DataObject) -> None:
    base = azure_example("metrics-batch-2024-02-01-MetricBatchExample2.json")
    body = data.draw(st.one_of(json_values, mutated_json(base)))
    aggregation = data.draw(AGGREGATIONS)
    only((MalformedResponse,), lambda: parse_batch(body, aggregation))


@FUZZ
@given(st.data())
def test_metrics_list_json(data: st.DataObject) -> None:
    base = azure_example("metrics-list-2024-02-01-GetMetric.json")
    body = data.draw(st.one_of(json_values, mutated_json(base)))
    aggregation = data.draw(AGGREGATIONS)
    only((MalformedResponse,), lambda: parse_metrics_json(body, aggregation, {}))


@FUZZ
@given(st.data())
def test_metrics_list_through_the_sdk_models(data: st.DataObject) -> None:
    # The SDK is imported at module level: a first import inside the test would count against the deadline.
    base = azure_example("metrics-list-2024-02-01-GetMetric.json")
    body = data.draw(st.one_of(json_values, mutated_json(base)))
    aggregation = data.draw(AGGREGATIONS)

    def parse() -> Any:
        model = Response.deserialize(body)  # what the SDK hands the collector
        return parse_response(model, aggregation)

    only((MalformedResponse, DeserializationError), parse)


ARM_READERS: list[Callable[[Any], Any]] = [
    lambda b: discovery.parse_cluster(b, "00000000-0000-0000-0000-000000000001", "rg", "aks"),
    discovery.lb_capacity,
    discovery.nat_ip_refs,
    discovery.prefix_size,
    discovery.location,
]


@FUZZ
@given(json_values, st.integers(0, len(ARM_READERS) - 1))
def test_arm_bodies_read_by_discovery(body: Any, which: int) -> None:
    only((MalformedResponse,), lambda: ARM_READERS[which](body))


# ---------------------------------------------------------------------------------------- config loaders

yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            ["azure:", "  enabled: true", "  interval: 1h", "  resources: [x]", "conntrack:", "  top_k: -1",
             "listen: ':99999'", "kubernetes: {enabled: yes}", "  - a", "web_config_file: /nonexistent", "[", "{",
             "  cluster: {name: a}", "azure: 3", "log_level: loud", "&a x", "*a", "!!python/object:os.system x"]
        ),
        max_size=10,
    ).map("\n".join),
)  # fmt: skip

web_text = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            ["tls_server_config:", "  cert_file: /nonexistent", "  key_file: x", "basic_auth_users:",
             "  alice: $2y$10$abcdefghijklmnopqrstuv", "  bob: notbcrypt", "http_server_config:", "  headers:",
             "    X-Frame-Options: deny", "  min_version: TLS10", "[", ": :", "  client_auth_type: Maybe"]
        ),
        max_size=10,
    ).map("\n".join),
)  # fmt: skip


@settings(max_examples=100, deadline=1000, derandomize=True)
@given(yaml_text)
def test_config_file(text: str) -> None:
    from snat_exporter.config import load_config

    with _file(text) as path:
        only((ConfigError,), lambda: load_config(path, environ={}))


@settings(max_examples=100, deadline=1000, derandomize=True)
@given(web_text)
def test_web_config_file(text: str) -> None:
    from snat_exporter.web.config import load_web_config

    with _file(text) as path:
        only((ConfigError,), lambda: load_web_config(path))


@contextmanager
def _file(text: str) -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        yield str(path)
