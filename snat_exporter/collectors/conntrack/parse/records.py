"""What the parsers produce: the flow key a conntrack entry is reduced to, the kernel's names for its parts, and the
two ways a kernel answer can fail to parse.

A flow is reduced at once to a :data:`FlowKey` ``(source ip, protocol, destination ip, destination port, snat,
tcp state)`` and counted, because the exporter never needs a single flow, only how many share a key. The
destination is the *reply* tuple's source: the peer that really answers, after any DNAT (a ClusterIP or a
NodePort rewritten to an endpoint), which is what an Azure SNAT port is spent on.
"""

from __future__ import annotations

# (source ip, protocol number, destination ip, destination port (0 when the protocol has none), source NAT
# applied, TCP state in lower case or "")
FlowKey = tuple[str, int, str, int, bool, str]

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


class MalformedError(ValueError):
    """The kernel's answer does not parse: truncated message or attribute."""


class NetlinkErrorReply(OSError):
    """An NLMSG_ERROR (or a failed NLMSG_DONE) with a negative errno."""
