"""Azure Monitor's ``$filter`` as the simulator reads it: ``eq`` / ``ne`` conditions, ``'*'`` to split by a
dimension, ``and`` between dimensions, ``or`` within one; resolved per metric against its dimensions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from snat_exporter.azure_facts import MetricDef
from snat_exporter.simulator.errors import bad_request

_TOKEN_RE = re.compile(r"\s*(?:(?P<lp>\()|(?P<rp>\))|'(?P<str>(?:[^']|'')*)'|(?P<word>[^\s()']+))")


@dataclass(frozen=True)
class Condition:
    dimension: str  # as written; resolved case-insensitively per metric
    op: str  # "eq" | "ne"
    value: str | None  # None = '*'


Clause = tuple[Condition, ...]  # conditions joined by `or` (one dimension only)


def parse_filter(text: str | None) -> tuple[Clause, ...] | None:
    """``A eq 'a1' and B eq 'b1' or B eq 'b2' and C eq '*'`` -> ((A=a1), (B=b1, B=b2), (C=*))."""
    if text is None or not text.strip():
        return None
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise bad_request(f"Invalid $filter '{text}': unexpected text at position {pos}.")
        pos = m.end()
        if m.group("lp") or m.group("rp"):
            continue  # grouping adds nothing: `or` may only join conditions on one dimension
        if m.group("str") is not None:
            tokens.append(("str", m.group("str").replace("''", "'")))
        elif m.group("word"):
            tokens.append(("word", m.group("word")))
    clauses: list[list[Condition]] = [[]]
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3 or tokens[i][0] != "word" or tokens[i + 2][0] != "str":
            raise bad_request(f"Invalid $filter '{text}': expected <dimension> eq '<value>'.")
        name, op, value = tokens[i][1], tokens[i + 1][1].lower(), tokens[i + 2][1]
        if op not in ("eq", "ne"):
            raise bad_request(f"Invalid $filter '{text}': operator '{tokens[i + 1][1]}' is not supported.")
        clauses[-1].append(Condition(name, op, None if value == "*" else value))
        i += 3
        if i < len(tokens):
            joiner = tokens[i][1].lower()
            if tokens[i][0] != "word" or joiner not in ("and", "or"):
                raise bad_request(f"Invalid $filter '{text}': expected 'and' or 'or' after a condition.")
            if joiner == "and":
                clauses.append([])
            i += 1
            if i == len(tokens):
                raise bad_request(f"Invalid $filter '{text}': a condition must follow '{joiner}'.")
    for clause in clauses:
        if len({c.dimension.lower() for c in clause}) > 1:
            raise bad_request(
                f"Invalid $filter '{text}': the logical 'or' operator cannot separate two different metadata names."
            )
    return tuple(tuple(c) for c in clauses)


@dataclass(frozen=True)
class ResolvedFilter:
    clauses: tuple[tuple[int, tuple[Condition, ...]], ...]  # (dimension index, conditions)
    group: tuple[int, ...]  # dimension indexes the answer is split by, in filter order

    @property
    def splits_only(self) -> bool:
        """Every clause is a plain `eq '*'`: every series matches (the common case, checked once)."""
        return all(any(c.op == "eq" and c.value is None for c in conds) for _, conds in self.clauses)

    def matches(self, key: tuple[str, ...]) -> bool:
        for index, conditions in self.clauses:
            value = key[index].lower()
            if not any(_condition_holds(c, value) for c in conditions):
                return False
        return True


def _condition_holds(c: Condition, value: str) -> bool:
    if c.value is None:
        return c.op == "eq"
    return (value == c.value.lower()) == (c.op == "eq")


def resolve_filter(
    clauses: tuple[Clause, ...] | None, metric: MetricDef, rollup: Sequence[str], validate: bool
) -> ResolvedFilter:
    if not clauses:
        return ResolvedFilter((), ())
    lower = [d.lower() for d in metric.dimensions]
    rolled = {r.strip().lower() for r in rollup}
    resolved: list[tuple[int, tuple[Condition, ...]]] = []
    group: list[int] = []
    for clause in clauses:
        name = clause[0].dimension.lower()
        if name not in lower:
            if validate:
                raise bad_request(
                    f"Metric: {metric.name} does not support requested dimension combination: "
                    f"{clause[0].dimension}, supported ones are: {', '.join(metric.dimensions) or 'none'}"
                )
            continue
        index = lower.index(name)
        resolved.append((index, clause))
        if any(c.op == "eq" for c in clause) and name not in rolled and index not in group:
            group.append(index)
    return ResolvedFilter(tuple(resolved), tuple(group))
