"""What a rule definition is made of: rules, groups and files, and the mixin settings as the definitions read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from snat_exporter.generate.mixin import MixinConfig


@dataclass(frozen=True)
class DrillDown:
    """Part of a description that runs a PromQL query from the template (``query``): left out where a rule engine
    has no such function (Azure Monitor)."""

    text: str


Segment = str | DrillDown


@dataclass(frozen=True)
class Rule:
    expr: str
    record: str | None = None
    alert: str | None = None
    summary: str = ""
    description: tuple[Segment, ...] = ()
    comment: str = ""

    @property
    def name(self) -> str:
        return self.alert or self.record or ""

    def description_text(self, *, drill_downs: bool = True) -> str:
        return "".join(
            s if isinstance(s, str) else s.text for s in self.description if drill_downs or isinstance(s, str)
        )


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    comment: str = ""


@dataclass(frozen=True)
class RuleFile:
    name: str
    header: str
    groups: tuple[Group, ...] = field(default_factory=tuple)


def pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def words(seconds: float) -> str:
    """15 minutes, 2 minutes, 1 hour, 90 seconds: a ``for:`` as the description says it."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


class Context:
    """What the rule definitions read from the mixin config, named for how they use it."""

    def __init__(self, mixin: MixinConfig):
        self.mixin = mixin
        self.t = mixin.thresholds
        self.c = mixin.cluster_label
        self.exporter = mixin.selectors.cluster_exporter
        self.agent = mixin.selectors.node_agent

    def x(self, metric: str, extra: str = "") -> str:
        """A cluster exporter series, selected by its job."""
        return f"{metric}{{{self.exporter}{', ' + extra if extra else ''}}}"

    def a(self, metric: str, extra: str = "") -> str:
        """A node agent series, selected by its job."""
        return f"{metric}{{{self.agent}{', ' + extra if extra else ''}}}"

    def both(self, metric: str) -> str:
        """A series both the cluster exporter and the node agents export (their own health)."""
        if self.exporter == self.agent:
            return self.x(metric)
        return f"({self.x(metric)} or {self.a(metric)})"

    def label(self, name: str) -> str:
        return f"{{{{ $labels.{name} }}}}"

    @property
    def in_cluster(self) -> str:
        """`` in cluster X`` when the series has a cluster label; nothing on a single-cluster Prometheus."""
        return f"{{{{ with $labels.{self.c} }}}} in cluster {{{{ . }}}}{{{{ end }}}}"

    def query_cluster(self) -> str:
        """The drill-down matcher for the alert's own cluster (empty matches series without the label)."""
        return f"{self.c}=%q"

    def for_words(self, name: str) -> str:
        """The ``for:`` of alert ``name`` as its description says it."""
        return words(self.mixin.alert(name).for_seconds)
