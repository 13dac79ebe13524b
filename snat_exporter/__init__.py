"""snat-exporter: see SNAT port exhaustion coming on AKS, and know which node, pod and destination cause it."""

__version__ = "0.1.0"
