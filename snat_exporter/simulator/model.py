"""What each Azure metric would measure at a given minute: the raw per-dimension samples, before any query.

Values are pure functions of (scenario, resource, metric, minute relative to the simulator start), so a test can
ask for the exact number the exporter must show. The query layer (query.py) filters, splits and aggregates
these samples the way Azure Monitor does.
"""

from __future__ import annotations

import functools
import math

from snat_exporter.simulator.scenario import (
    Event,
    LoadBalancer,
    NatGateway,
    Scenario,
    stable_fraction,
)

Samples = list[tuple[tuple[str, ...], float]]  # (dimension values in MetricDef.dimensions order, value)

_TCP, _UDP = "6", "17"


@functools.lru_cache(maxsize=65536)
def _phase(*parts: str) -> float:
    return stable_fraction("phase", *parts)


def _curve(low: float, high: float, period: float, minute: float, phase: float) -> float:
    return low + (high - low) * (0.5 + 0.5 * math.sin(2 * math.pi * (minute / period + phase)))


def _event_level(events: tuple[Event, ...], target: str, minute: float, base: float) -> tuple[float, float]:
    """(level, failed connections per minute) of ``target`` at ``minute`` after its events; last event wins."""
    level, failed = base, 0.0
    for ev in events:
        if ev.target != target or minute < ev.start_minute:
            continue
        if ev.until_minute is not None and minute >= ev.until_minute:
            continue
        if minute >= ev.end_minute:
            level, failed = ev.to_level, ev.failed_per_minute
        else:
            start = ev.from_level if ev.from_level is not None else base
            span = ev.end_minute - ev.start_minute
            level, failed = start + (ev.to_level - start) * (minute - ev.start_minute) / span, 0.0
    return level, failed


class Model:
    def __init__(self, scenario: Scenario):
        self.scenario = scenario

    # ---- load balancer backends

    def backend_level(self, lb: LoadBalancer, ip: str, minute: int) -> tuple[float, float]:
        """(TCP used/allocated demand ratio, failed connections per minute); the ratio may exceed 1 (demand)."""
        u = lb.usage
        base = _curve(u.min, u.max, u.period_minutes, minute, _phase(lb.name, ip))
        return _event_level(self.scenario.events, ip, minute, base)

    def backend_ports(self, lb: LoadBalancer, ip: str, minute: int) -> tuple[int, int, int, float]:
        """(allocated, used TCP, used UDP, failed per minute) of one backend over all frontends."""
        allocated = lb.ports_per_backend
        ratio, failed = self.backend_level(lb, ip, minute)
        used_tcp = round(min(max(ratio, 0.0), 1.0) * allocated)
        used_udp = min(round(used_tcp * lb.usage.udp_ratio), allocated)
        return allocated, used_tcp, used_udp, failed

    def lb_samples(self, lb: LoadBalancer, metric: str, minute: int) -> Samples:
        out: Samples = []
        n_fe = max(len(lb.frontend_ips), 1)
        # Several frontends share the backend's allocation evenly (a simplification, documented).
        if metric in ("AllocatedSnatPorts", "UsedSnatPorts", "SnatConnectionCount"):
            for ip in lb.backends:
                allocated, tcp, udp, failed = self.backend_ports(lb, ip, minute)
                # Only the connection counts vary minute to minute; hashing costs, so only for them.
                jitter = stable_fraction("conn", lb.name, ip, minute) if metric == "SnatConnectionCount" else 0.0
                for fe in lb.frontend_ips:
                    if metric == "AllocatedSnatPorts":
                        out.append(((fe.address, ip, "TCP", "False"), allocated / n_fe))
                        out.append(((fe.address, ip, "UDP", "False"), allocated / n_fe))
                    elif metric == "UsedSnatPorts":
                        out.append(((fe.address, ip, "TCP", "False"), tcp / n_fe))
                        out.append(((fe.address, ip, "UDP", "False"), udp / n_fe))
                    else:
                        ok = round((tcp + udp) * lb.usage.connections_per_port * (0.8 + 0.4 * jitter) / n_fe)
                        bad = math.ceil(failed * (0.75 + 0.5 * jitter) / n_fe) if failed > 0 else 0
                        pending = math.floor(3 * jitter) + (5 if failed > 0 else 0)
                        out.append(((fe.address, ip, "Successful"), float(ok)))
                        out.append(((fe.address, ip, "Failed"), float(bad)))
                        out.append(((fe.address, ip, "Pending"), float(pending)))
        elif metric == "VipAvailability":
            for fe in lb.frontend_ips:
                out.append(((fe.address, "80"), 100.0))
        elif metric == "DipAvailability":
            for ip in lb.backends:
                for fe in lb.frontend_ips:
                    out.append((("TCP", "80", fe.address, "80", ip), 100.0))
        return out

    # ---- NAT gateways

    def nat_level(self, nat: NatGateway, minute: int) -> tuple[float, float]:
        """(active connections, failed connections per minute)."""
        u = nat.usage
        base = _curve(u.min, u.max, u.period_minutes, minute, _phase(nat.name))
        return _event_level(self.scenario.events, nat.name, minute, base)

    def nat_samples(self, nat: NatGateway, metric: str, minute: int) -> Samples:
        u = nat.usage
        active, failed = self.nat_level(nat, minute)
        active = max(active, 0.0)
        udp = round(active * u.udp_ratio)
        tcp = round(active) - udp
        jitter = stable_fraction("nat", nat.name, minute)
        new_tcp = round(tcp * u.new_per_active * (0.8 + 0.4 * jitter))
        new_udp = round(udp * u.new_per_active * (0.8 + 0.4 * jitter))
        bad = math.ceil(failed * (0.75 + 0.5 * jitter)) if failed > 0 else 0
        if metric == "TotalConnectionCount":
            return [((_TCP,), float(tcp)), ((_UDP,), float(udp))]
        if metric == "SNATConnectionCount":
            return [
                ((_TCP, "Attempted"), float(new_tcp + bad)),
                ((_UDP, "Attempted"), float(new_udp)),
                ((_TCP, "Failed"), float(bad)),
                ((_UDP, "Failed"), 0.0),
            ]
        if metric == "PacketDropCount":
            return [((), float(math.floor(3 * jitter) + 4 * bad))]
        if metric == "DatapathAvailability":
            return [((), round(100.0 - 0.2 * jitter, 2))]
        out_tcp = new_tcp * u.bytes_per_connection
        out_udp = new_udp * u.bytes_per_connection / 10
        byte_values = {
            (_TCP, "Out"): out_tcp,
            (_TCP, "In"): out_tcp * 4,
            (_UDP, "Out"): out_udp,
            (_UDP, "In"): out_udp * 2,
        }
        if metric == "ByteCount":
            return [(k, float(round(v))) for k, v in byte_values.items()]
        if metric == "PacketCount":
            return [(k, float(math.ceil(v / 1000))) for k, v in byte_values.items()]
        return []

    def samples(self, resource: LoadBalancer | NatGateway, metric: str, minute: int) -> Samples:
        if isinstance(resource, LoadBalancer):
            return self.lb_samples(resource, metric, minute)
        return self.nat_samples(resource, metric, minute)
