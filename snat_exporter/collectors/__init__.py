"""The table of collectors: name -> factory and metric catalogue, in start-up order.

Each collector lives in its own package (``azure``, ``kube``, ``conntrack``) with ``config.py`` (its settings
section), ``metrics.py`` (its series) and ``collector.py`` (a factory ``create(config, context)``). Modules are
imported lazily so that a disabled collector's dependencies are never loaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Order matters: kubernetes first, because the other collectors look names up in its cache.
COLLECTORS = ("kubernetes", "azure", "conntrack")

_PACKAGES = {"kubernetes": "kube", "azure": "azure", "conntrack": "conntrack"}


def package(name: str) -> str:
    return f"snat_exporter.collectors.{_PACKAGES[name]}"


def catalogue_modules() -> list[ModuleType]:
    out = []
    for name in COLLECTORS:
        try:
            out.append(importlib.import_module(package(name) + ".metrics"))
        except ModuleNotFoundError as e:
            if e.name != package(name) + ".metrics":
                raise
    return out


def factory_module(name: str) -> ModuleType:
    return importlib.import_module(package(name) + ".collector")
