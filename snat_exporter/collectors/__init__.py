"""The collectors, one package each, and the table that lists them.

A collector package (``azure``, ``kube``, ``conntrack``) holds ``config.py`` (its settings section, which declares
``enabled``, ``interval``, ``timeout`` and ``max_age`` like every section), ``metrics.py`` (its series, ``SPECS``)
and ``collector.py`` with the factory every collector has: ``create(section, context) -> Collector``.

The table is the collector sections of :class:`snat_exporter.config.Config`, each declared with
:func:`collector_section`: the one row gives the config section, whether it is enabled, its package (so its
factory) and whether it is the identity lookup of the others. The runner reads it; nothing else lists collectors.
Collector modules are imported when the runner creates an enabled collector, so that a disabled collector's
dependencies are never loaded.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from snat_exporter.settings import setting

if typing.TYPE_CHECKING:
    from snat_exporter.collectors.base import Collector, CollectorContext

S = TypeVar("S")

Factory = Callable[[Any, "CollectorContext"], "Collector"]

# What the runner reads of every section: a section without them is refused when the table is read.
SECTION_FIELDS = ("enabled", "interval", "timeout", "max_age")


@dataclass(frozen=True)
class _Row:
    package: str
    provides_identity: bool


@dataclass(frozen=True)
class CollectorRow:
    """One collector: ``name`` is its config section and its ``collector`` label value."""

    name: str
    package: str  # snat_exporter.collectors.<package>
    section: type
    provides_identity: bool  # its collector's ``identity`` is the lookup every other collector receives

    def factory(self) -> Factory:
        module = importlib.import_module(f"{__name__}.{self.package}.collector")
        create: Factory = module.create
        return create


def collector_section(section: type[S], package: str, doc: str, *, provides_identity: bool = False) -> S:
    """A row of the collector table: the config section of the collector in package ``package``."""
    row = _Row(package, provides_identity)
    return setting(default_factory=section, doc=doc, metadata={"collector": row})


def collector_table(config_cls: type) -> tuple[CollectorRow, ...]:
    """The rows of ``config_cls`` (the Config class), in declaration order."""
    hints = typing.get_type_hints(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        row = f.metadata.get("collector")
        if row is None:
            continue
        section = hints[f.name]
        missing = [name for name in SECTION_FIELDS if name not in {g.name for g in dataclasses.fields(section)}]
        if missing:
            raise TypeError(f"collector section {f.name} ({section.__name__}) lacks {', '.join(missing)}")
        rows.append(CollectorRow(f.name, row.package, section, row.provides_identity))
    return tuple(rows)


def start_order(rows: tuple[CollectorRow, ...]) -> tuple[CollectorRow, ...]:
    """The identity lookup first (the others receive it when they are created), then the table's order."""
    return tuple(sorted(rows, key=lambda row: not row.provides_identity))


def catalogue_modules() -> list[ModuleType]:
    """The ``metrics`` module of every collector package: the series they can export."""
    out = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.ispkg:
            out.append(importlib.import_module(f"{__name__}.{info.name}.metrics"))
    return out
