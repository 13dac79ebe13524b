"""`make demo` runs `snat-exporter demo`: SNAT series with node names at the printed URL, well within 60 s, and a
diagnose command that works against it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request


def test_demo_serves_snat_series_with_node_names_then_stops_on_sigterm() -> None:
    started = time.monotonic()
    with subprocess.Popen(
        [sys.executable, "-m", "snat_exporter", "demo", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        assert proc.stdout is not None
        url = command = None
        for line in proc.stdout:
            m = re.search(r"metrics:\s+(http://\S+/metrics)", line)
            url = m.group(1) if m else url
            m = re.search(r"diagnose:\s+(snat-exporter diagnose .*)$", line)
            if m:
                command = m.group(1).split()
                break
        assert url, "the demo did not print its metrics URL"
        assert command, "the demo did not print a diagnose command"
        text = ""
        while time.monotonic() - started < 60:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            if "azure_lb_snat_ports_used{" in text and 'state="failed"' in text:
                break
            time.sleep(0.2)  # polling interval while the first collection runs; the deadline is the 60 s above
        assert "azure_lb_snat_ports_used{" in text, "no SNAT series within 60 s"
        assert re.search(r'azure_lb_snat_ports_used\{[^}]*node="aks-nodepool1-\d+-vmss000002"[^}]*\} 1024', text)
        assert re.search(r'azure_lb_snat_connections_total\{[^}]*state="failed"[^}]*\} [1-9]', text)
        # The printed diagnose command, as a user pastes it, reads the demo's simulator and names the nodes
        # from its Kubernetes API.
        report = subprocess.run(
            [sys.executable, "-m", "snat_exporter", *command[1:]], capture_output=True, text=True, timeout=60
        )
        assert report.returncode == 1, report.stderr  # a critical finding: one node is out of ports
        assert re.search(r"CRITICAL\] SNAT connections failing on node aks-nodepool1-\d+-vmss000002", report.stdout)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
