"""PromQL as a real parser sees it (``promql-parser``, the Rust port of Prometheus's own parser).

Every generated expression and dashboard query goes through :func:`check` before anything is written, so a mixin
selector with a typo fails at generation with the rule's name, not later in Prometheus, and the tests read metric
names and label matchers from the syntax tree instead of guessing them from text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import promql_parser

from snat_exporter.generate.deploy import GenerateError

__all__ = ["GenerateError", "Selector", "dashboard_queries", "metric_names", "parse", "selectors", "template_queries"]

# Grafana's label_values(selector, label): a variable query, not PromQL; its selector is.
_LABEL_VALUES = re.compile(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", re.S)


@dataclass(frozen=True)
class Selector:
    """One vector selector: its metric name (or None for ``{__name__=~...}``) and its matchers."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value); op is =, !=, =~ or !~

    def names(self) -> set[str]:
        """The metric names it can select: its name, or those a ``__name__`` matcher lists."""
        if self.name:
            return {self.name}
        out: set[str] = set()
        for label, op, value in self.matchers:
            if label == "__name__":
                out.update(value.split("|") if op == "=~" else [value])
        return out

    def has(self, label: str, op: str, value: str) -> bool:
        return (label, op, value) in self.matchers


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def parse(expr: str, where: str = "expression") -> promql_parser.Expr:
    try:
        return promql_parser.parse(expr)
    except ValueError as e:
        raise GenerateError(f"{where}: not valid PromQL ({e}): {expr}") from None


def selector_of(query: str) -> str:
    """A Grafana variable query's PromQL: the selector of ``label_values(selector, label)``, else the query."""
    m = _LABEL_VALUES.fullmatch(query)
    return m.group(1) if m else query


def selectors(expr: str, where: str = "expression") -> Iterator[Selector]:
    found: list[Selector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, _OPS[str(m.op)], m.value) for m in node.matchers.matchers)
            found.append(Selector(node.name, matchers))

    promql_parser.walk(parse(expr, where), visit)
    return iter(found)


def metric_names(expr: str, where: str = "expression") -> set[str]:
    return {name for s in selectors(expr, where) for name in s.names()}


_TEMPLATE_QUERY = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"[^}|]*\|\s*query')


def template_queries(text: str) -> list[str]:
    """The PromQL an annotation runs (``{{ with printf "q{a=%q}" $labels.a | query }}``), with each ``%q``
    standing in for a quoted label value."""
    return [q.replace('\\"', '"').replace("%q", '"x"') for q in _TEMPLATE_QUERY.findall(text)]


def dashboard_queries(board: dict[str, object]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable of a dashboard, rows' panels included."""
    title = board.get("title")
    panels = board.get("panels", [])
    assert isinstance(panels, list)
    for panel in panels:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                if "expr" in target:
                    yield f"{title}: {inner.get('title')}", target["expr"]
    templating = board.get("templating", {})
    assert isinstance(templating, dict)
    for var in templating.get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            yield f"{title}: ${var['name']}", selector_of(query)
