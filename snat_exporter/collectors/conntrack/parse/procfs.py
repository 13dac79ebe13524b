"""Parsing procfs text: /proc/net/nf_conntrack lines, /proc/net/stat/nf_conntrack, the one-number sysctl files.
The fallback source when netlink is unavailable (``source: procfs`` or ``auto``)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator

from snat_exporter.collectors.conntrack.parse.records import FlowKey, MalformedError

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
