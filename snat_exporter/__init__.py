"""snat-exporter: see SNAT port exhaustion coming on AKS, and know which node, pod and destination cause it."""

from snat_exporter.version import __version__

__all__ = ["__version__"]
