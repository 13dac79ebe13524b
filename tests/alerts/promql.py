"""What the cross-checks need from PromQL: the metric names an expression reads.

No PromQL parser ships with our dependencies, and the real one (Prometheus) is exercised by ``promtool check
rules`` and the end-to-end test. Here a conservative tokenizer is enough: drop strings, label matchers, grouping
clauses, ranges and Grafana variables, and what remains that is an identifier not followed by ``(`` is a metric.
"""

from __future__ import annotations

import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(\s*\()?")


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()
    for op, value in _NAME_MATCHER.findall(expr):
        names.update(value.split("|") if op == "=~" else [value])
    text = _GRAFANA_VAR.sub("1", expr)
    text = _MATCHERS.sub(" ", _STRING.sub('""', text))
    text = _RANGE.sub(" ", _GROUPING.sub(" ", text))
    for name, call in _IDENT.findall(text):
        if call or name in KEYWORDS or name.lower() in {"inf", "nan"}:
            continue
        names.add(name)
    return names


def label_values_selector(query: str) -> str:
    """``label_values(selector, label)`` -> selector (a Grafana variable query); other queries unchanged."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.S)
    return m.group(1) if m else query
