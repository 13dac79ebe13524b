"""What the conntrack collector can read on this node, found once at start-up, and the log lines that say so.

An operator reading the start-up log learns which source serves the flow table and the counters, and for every
source that cannot be read, why (a capability, a mount, a kernel option).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path

from snat_exporter.collectors.conntrack import netlink
from snat_exporter.collectors.conntrack.config import ConntrackConfig

log = logging.getLogger("snat_exporter.conntrack")


@dataclass
class Access:
    """What this process can read, found at start-up."""

    netlink: bool = False
    netlink_why: str = ""
    proc_table: bool = False
    proc_table_why: str = ""
    proc_stat: bool = False
    proc_stat_why: str = ""


def probe(config: ConntrackConfig, proc: Path) -> Access:
    """What this process can read (netlink, the procfs files), tried once at start-up."""
    access = Access()
    # With the flow table in Cilium's map, nf_conntrack's counters still describe the node (host flows,
    # conntrack-based policies), so the counter sources are probed for `cilium` too.
    if config.source in ("auto", "netlink", "cilium"):
        try:
            netlink.read_count()
            access.netlink = True
        except PermissionError:
            access.netlink_why = "permission denied: ctnetlink needs CAP_NET_ADMIN"
        except OSError as e:
            access.netlink_why = f"{errno.errorcode.get(e.errno or 0, 'error')}: {e.strerror or e}"
    else:
        access.netlink_why = "disabled by conntrack.source=procfs"
    if config.source in ("auto", "procfs", "cilium"):
        access.proc_table, access.proc_table_why = readable(proc / "net/nf_conntrack")
        access.proc_stat, access.proc_stat_why = readable(proc / "net/stat/nf_conntrack")
    else:
        access.proc_table_why = access.proc_stat_why = "disabled by conntrack.source=netlink"
    return access


def announce(a: Access, config: ConntrackConfig, node: str) -> None:
    """One line with the sources chosen, and a warning naming what cannot be read and why."""
    table = "netlink" if a.netlink else "procfs" if a.proc_table else "none"
    if config.source == "cilium":
        table = f"cilium ({config.bpffs})"
    counters = "netlink" if a.netlink else "procfs" if a.proc_stat else "sysctl count only"
    log.info(
        "conntrack sources",
        extra={"node": node, "table": table, "counters": counters, "source": config.source},
    )
    if config.source == "cilium":
        return  # the flow table does not depend on netlink or procfs; a missing map is said when read
    if config.source != "auto" and (a.netlink or a.proc_table):
        return  # the operator chose the source; the other one being off is not news
    missing = []
    if not a.netlink:
        missing.append(f"netlink ({a.netlink_why})")
    if not a.netlink and not a.proc_table:
        missing.append(f"/proc/net/nf_conntrack ({a.proc_table_why})")
    if not a.netlink and not a.proc_stat:
        missing.append(f"/proc/net/stat/nf_conntrack ({a.proc_stat_why})")
    if missing:
        served = "flow table and counters from procfs" if table != "none" else "only the entry count and limit"
        log.warning(
            "conntrack: cannot read everything; serving what is readable",
            extra={"node": node, "unreadable": "; ".join(missing), "serving": served},
        )


def readable(path: Path) -> tuple[bool, str]:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True, ""
    except FileNotFoundError:
        return False, f"{path} does not exist (kernel without CONFIG_NF_CONNTRACK_PROCFS?)"
    except PermissionError:
        return False, f"{path}: permission denied (readable by root only)"
    except OSError as e:
        return False, f"{path}: {e.strerror}"
