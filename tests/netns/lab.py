"""A SNAT lab on the real kernel: pod namespace -> node namespace (nftables masquerade to a small port range,
the node's "SNAT budget") -> "internet" namespace with servers that hold connections.

Namespaces are named ``snt-<random>-pod|node|inet`` so parallel runs never collide, and :meth:`Lab.close` always
deletes them (use the lab as a context manager). Helpers wait on conditions with deadlines, never on sleeps.

``Lab(uplink=True)`` adds one veth pair between the root namespace (``snt-<random>-up``) and the node namespace
(``up0``) on a /30 of 198.18.0.0/15 (the benchmarking range, never routed), so that a process in the root namespace
(Prometheus, a fake API server) and one in the node namespace (a node agent) can reach each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.unprivileged import as_user

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable

POD_IPS = ("10.244.0.10", "10.244.0.11")
NODE_POD_IP = "10.244.0.1"
NODE_IP = "192.0.2.1"
INET_IPS = ("192.0.2.100", "192.0.2.101")
PORT_LO, PORT_HI = 20000, 20063  # the node's SNAT budget: 64 ports per destination

# A server that accepts and holds every connection on the given ip:port pairs until stdin closes.
SERVER = r"""
import select, socket, sys
socks = []
for spec in sys.argv[1:]:
    ip, port = spec.rsplit(":", 1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, int(port))); s.listen(4096); s.setblocking(False); socks.append(s)
print("ready", flush=True)
held = []
while True:
    r, _, _ = select.select(socks + [sys.stdin], [], [])
    for s in r:
        if s is sys.stdin:
            raise SystemExit(0)
        try:
            held.append(s.accept()[0])
        except BlockingIOError:
            pass
"""

# Opens connections / sends datagrams as told by JSON on argv, reports {"connected", "pending"} as soon as the
# expected number connected (or the deadline passed), then holds everything until stdin closes.
CLIENT = r"""
import json, select, socket, sys, time
plan = json.loads(sys.argv[1])
tcp, udp = [], []
for item in plan:
    for _ in range(item["count"]):
        if item["proto"] == "tcp":
            s = socket.socket(); s.setblocking(False)
            s.bind((item["src"], 0))
            s.connect_ex((item["dst"], item["port"]))
            tcp.append(s)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((item["src"], 0))
            s.sendto(b"x", (item["dst"], item["port"]))
            udp.append(s)
expect = sum(i.get("expect", i["count"]) for i in plan if i["proto"] == "tcp")
deadline = time.monotonic() + float(sys.argv[2])
connected = set()
while len(connected) < expect and time.monotonic() < deadline:
    pending = [s for s in tcp if s not in connected]
    _, w, _ = select.select([], pending, [], max(0.0, deadline - time.monotonic()))
    for s in w:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            connected.add(s)
print(json.dumps({"connected": len(connected), "pending": len(tcp) - len(connected), "udp": len(udp)}), flush=True)
sys.stdin.read()
"""


def require_root() -> None:
    import pytest

    if os.geteuid() != 0:
        pytest.fail("the conntrack lab needs root (network namespaces, nftables): run the netns tests as root")
    for tool in ("ip", "nft", "conntrack"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/install-system-deps.sh (make system-deps)")


def run(*args: str, input: str | None = None) -> str:
    done = subprocess.run(args, input=input, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next stdout line of ``proc``, or an error after ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no output from {proc.args!r} within {timeout}s")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"{proc.args!r} exited ({proc.wait()}): {err}")
    return line


class Lab:
    def __init__(
        self,
        *,
        udp_timeout: int | None = None,
        port_range: tuple[int, int] = (PORT_LO, PORT_HI),
        uplink: bool = False,
    ) -> None:
        token = secrets.token_bytes(3)
        self.prefix = f"snt-{token.hex()}"
        self.pod, self.node, self.inet = (f"{self.prefix}-{n}" for n in ("pod", "node", "inet"))
        self.procs: list[subprocess.Popen[str]] = []
        self.udp_timeout = udp_timeout
        self.port_lo, self.port_hi = port_range
        # A /30 picked from the lab's random token: two labs of parallel runs do not share it.
        net, last = f"198.{18 + (token[0] & 1)}.{token[1]}", token[2] & 0xFC
        self.uplink = f"{self.prefix}-up" if uplink else None
        self.uplink_root_ip, self.uplink_node_ip = f"{net}.{last + 1}", f"{net}.{last + 2}"

    def __enter__(self) -> Lab:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        for ns in (self.pod, self.node, self.inet):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # veth pairs created inside the namespaces: no interface ever appears in the root namespace.
        run("ip", "-n", self.node, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", self.pod)
        run("ip", "-n", self.node, "link", "add", "inet0", "type", "veth", "peer", "name", "eth0", "netns", self.inet)
        for ip in POD_IPS:
            run("ip", "-n", self.pod, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", self.node, "addr", "add", f"{NODE_POD_IP}/24", "dev", "pod0")
        run("ip", "-n", self.node, "addr", "add", f"{NODE_IP}/24", "dev", "inet0")
        for ip in INET_IPS:
            run("ip", "-n", self.inet, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", self.pod, "link", "set", "eth0", "up")
        run("ip", "-n", self.inet, "link", "set", "eth0", "up")
        run("ip", "-n", self.node, "link", "set", "pod0", "up")
        run("ip", "-n", self.node, "link", "set", "inet0", "up")
        run("ip", "-n", self.pod, "route", "add", "default", "via", NODE_POD_IP)
        # Fill traffic to 198.51.100.0/24 leaves the node and is silently dropped by the internet namespace.
        run("ip", "-n", self.node, "route", "add", "198.51.100.0/24", "via", INET_IPS[0])
        self.ns_exec(self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # nft 1.0.6 rejects a port range without a transport protocol match first, hence meta l4proto.
        rules = f"""
table ip snatlab {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.244.0.0/24 oifname "inet0" meta l4proto {{ tcp, udp }} masquerade to :{self.port_lo}-{self.port_hi}
    ip saddr 10.244.0.0/24 oifname "inet0" masquerade
  }}
}}
"""
        run("ip", "netns", "exec", self.node, "nft", "-f", "-", input=rules)
        if self.udp_timeout is not None:
            self.ns_exec(self.node, "sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={self.udp_timeout}")
        if self.uplink is not None:
            # The only interface the lab puts in the root namespace; deleting the node namespace deletes it too.
            run("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", "up0", "netns", self.node)
            run("ip", "addr", "add", f"{self.uplink_root_ip}/30", "dev", self.uplink)
            run("ip", "link", "set", self.uplink, "up")
            run("ip", "-n", self.node, "addr", "add", f"{self.uplink_node_ip}/30", "dev", "up0")
            run("ip", "-n", self.node, "link", "set", "up0", "up")

    def ns_exec(self, ns: str, *args: str) -> str:
        return run("ip", "netns", "exec", ns, *args)

    def spawn(self, ns: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def daemon(
        self, ns: str, args: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """A long-running process in ``ns`` (e.g. a node agent), its output in ``log`` (a pipe nobody reads would
        fill up and stall it); stopped by :meth:`close` like every other process of the lab."""
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )
        self.procs.append(proc)
        return proc

    def serve(self, *endpoints: str, timeout: float = 10) -> subprocess.Popen[str]:
        proc = self.spawn(self.inet, sys.executable, "-c", SERVER, *endpoints)
        assert read_line(proc, timeout).strip() == "ready"
        return proc

    def clients(self, ns: str, plan: Sequence[dict[str, Any]], timeout: float = 10) -> tuple[dict[str, int], Any]:
        """Open the plan's flows from ``ns``; returns (report, process). Flows stay open until the lab closes."""
        proc = self.spawn(ns, sys.executable, "-c", CLIENT, json.dumps(list(plan)), str(timeout))
        return json.loads(read_line(proc, timeout + 10)), proc

    def collect(self, *overrides: str, identity: dict[str, list[str]] | None = None, user: str | None = None) -> dict:
        """One collection in the node namespace, by the real collector in a subprocess; returns its JSON."""
        args = [PYTHON, "-m", "tests.netns.agent", "--identity", json.dumps(identity or {})]
        for item in overrides:
            args += ["--set", item]
        if user is not None:
            args = as_user(user, args)
        done = subprocess.run(
            ["ip", "netns", "exec", self.node, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        if done.returncode != 0:
            raise RuntimeError(f"collection failed ({done.returncode}): {done.stderr}")
        result: dict = json.loads(done.stdout)
        result["stderr"] = done.stderr
        return result

    def stats(self) -> dict[str, int]:
        """conntrack -S summed over CPUs: the reference the collector's counters are checked against."""
        totals: dict[str, int] = {}
        for line in self.ns_exec(self.node, "conntrack", "-S").splitlines():
            for token in line.split():
                key, sep, value = token.partition("=")
                if sep and key != "cpu":
                    totals[key] = totals.get(key, 0) + int(value)
        return totals

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self.procs.clear()
        if self.uplink is not None:
            with contextlib.suppress(subprocess.SubprocessError):
                subprocess.run(["ip", "link", "del", self.uplink], capture_output=True, timeout=30)
        for ns in (self.pod, self.node, self.inet):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def wait_for(condition: Any, timeout: float, what: str, interval_poll: float = 0.05) -> Any:
    """Poll ``condition()`` until it returns a truthy value or ``timeout`` passes (then fail, naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        select.select([], [], [], interval_poll)  # a poll interval, not synchronisation: the condition decides
