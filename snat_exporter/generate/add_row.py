"""``snat-exporter dashboards add-row``: the "Network: SNAT Activity" row, put into a dashboard a team already has.

Teams have a "Cluster Overview" of their own (kubernetes-mixin's, one from grafana.com, a home-grown one) and want
the row in it, not a second dashboard. The row is taken from the generated SNAT Activity dashboard (so it follows
the mixin config) and:

- replaces a row of the same title with its panels (a second run changes nothing), else goes below every panel;
- keeps every other panel, its id and position untouched; its own panels get ids above the dashboard's;
- reads only three template variables, datasource, cluster and node: it maps each onto the dashboard's own when one
  exists under any name (a Prometheus datasource variable; a query variable over the cluster label, over ``node``)
  and adds the missing ones; the load balancer and NAT gateway filters of the standalone dashboard become "all".
"""

from __future__ import annotations

import json
import re
from typing import Any

from snat_exporter.generate.deploy import GenerateError
from snat_exporter.generate.mixin import MixinConfig

Panel = dict[str, Any]
_LABEL_VALUES = re.compile(r"label_values\((?:.*,)?\s*(\w+)\s*\)\s*$", re.S)
# Filters of the standalone dashboard that the row does without: the host dashboard has no such variables.
_DROPPED_FILTERS = ("load_balancer", "nat_gateway")


def _query_text(var: dict[str, Any]) -> str:
    query = var.get("query", "")
    if isinstance(query, dict):
        query = query.get("query", "")
    return str(query)


def _label_of(var: dict[str, Any]) -> str | None:
    """The label a query variable lists (``label_values(..., cluster)`` -> ``cluster``)."""
    if var.get("type") != "query":
        return None
    m = _LABEL_VALUES.search(_query_text(var))
    return m.group(1) if m else None


def _is_prometheus_datasource(var: dict[str, Any]) -> bool:
    return var.get("type") == "datasource" and str(var.get("query", "")).lower() == "prometheus"


def _row_span(panels: list[Panel], title: str) -> tuple[int, int] | None:
    """[start, end) of the row titled ``title`` and the panels under it (an open row owns the panels up to the
    next row; a collapsed row carries its own in ``panels``)."""
    for i, panel in enumerate(panels):
        if panel.get("type") == "row" and panel.get("title") == title:
            end = i + 1
            if not panel.get("collapsed"):
                while end < len(panels) and panels[end].get("type") != "row":
                    end += 1
            return i, end
    return None


def _bottom(panels: list[Panel]) -> int:
    return max((int(p["gridPos"]["y"]) + int(p["gridPos"]["h"]) for p in panels if "gridPos" in p), default=0)


def _max_id(panels: list[Panel]) -> int:
    ids = [int(p["id"]) for p in panels if isinstance(p.get("id"), int)]
    ids += [int(q["id"]) for p in panels for q in p.get("panels", []) if isinstance(q.get("id"), int)]
    return max(ids, default=0)


def _variables(board: dict[str, Any], ours: list[dict[str, Any]], cluster_label: str) -> dict[str, str]:
    """Our variable name -> the host's; adds to ``board`` the ones it lacks."""
    templating = board.setdefault("templating", {})
    host: list[dict[str, Any]] = templating.setdefault("list", [])
    by_name = {v.get("name"): v for v in ours}
    mapping: dict[str, str] = {}
    added: list[dict[str, Any]] = []
    wanted = {
        "datasource": _is_prometheus_datasource,
        "cluster": lambda v: _label_of(v) == cluster_label,
        "node": lambda v: _label_of(v) == "node",
    }
    for name, matches in wanted.items():
        found = next((v for v in host if matches(v)), None)
        if found is not None:
            mapping[name] = str(found["name"])
            continue
        taken = {v.get("name") for v in host}
        new_name = name if name not in taken else f"snat_{name}"
        var = json.loads(json.dumps(by_name[name]))
        var["name"] = new_name
        added.append(var)
        mapping[name] = new_name
    for var in added:
        var.update(_rewrite(var, mapping))
        if var is added[0] and _is_prometheus_datasource(var):
            host.insert(0, var)  # the other variables' queries read it
        else:
            host.append(var)
    return mapping


def _rewrite(obj: Any, mapping: dict[str, str]) -> Any:
    """``obj`` (panels, variables) with every string rewritten by :func:`_rewrite_text`."""
    if isinstance(obj, str):
        return _rewrite_text(obj, mapping)
    if isinstance(obj, list):
        return [_rewrite(v, mapping) for v in obj]
    if isinstance(obj, dict):
        return {k: _rewrite(v, mapping) for k, v in obj.items()}
    return obj


def _rewrite_text(text: str, mapping: dict[str, str]) -> str:
    for label in _DROPPED_FILTERS:
        text = re.sub(rf', {label}=~"\$\{{?{label}\}}?"', "", text)
    if not mapping:
        return text
    # One pass over all names, so a variable renamed to another's name is not renamed twice.
    names = "|".join(map(re.escape, mapping))
    return re.sub(rf"\$\{{({names})\}}|\$({names})\b", lambda m: "${" + mapping[m.group(1) or m.group(2)] + "}", text)


def _row_panels(source: dict[str, Any], title: str) -> list[Panel]:
    panels: list[Panel] = source["panels"]
    span = _row_span(panels, title)
    if span is None:
        raise GenerateError(f"the generated dashboard has no {title!r} row")
    return [json.loads(json.dumps(p)) for p in panels[span[0] : span[1]]]


def add_row(board: dict[str, Any], source: dict[str, Any], mixin: MixinConfig, title: str) -> dict[str, Any]:
    """``board`` with the row ``title`` of ``source`` (a generated dashboard) in it, replacing an earlier copy."""
    if not isinstance(board.get("panels", []), list):
        raise GenerateError("not a Grafana dashboard: `panels` is not a list")
    out = json.loads(json.dumps(board))
    panels: list[Panel] = out.setdefault("panels", [])
    span = _row_span(panels, title)
    if span is not None:
        del panels[span[0] : span[1]]
    mapping = _variables(out, source.get("templating", {}).get("list", []), mixin.cluster_label)
    row: list[Panel] = _rewrite(_row_panels(source, title), mapping)
    shift = _bottom(panels) - int(row[0]["gridPos"]["y"])  # below everything the dashboard has
    next_id = _max_id(panels)
    for panel in row:
        next_id += 1
        panel["id"] = next_id
        panel["gridPos"]["y"] = int(panel["gridPos"]["y"]) + shift
    panels.extend(row)
    return out


def dump(board: dict[str, Any]) -> str:
    # The user's key order is kept (no sort): their file diffs only where the row changed.
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"
