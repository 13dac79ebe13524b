"""The Grafana dashboards, built with Grafana's Foundation SDK from the mixin config.

Two dashboards share one set of panels: "Cluster Overview" (an overview row, then the "Network: SNAT Activity"
row) and a standalone "SNAT Activity" for teams that already have a Cluster Overview of their own (they can also
put the row into theirs: ``snat-exporter dashboards add-row``). Queries read the recording rules where one exists,
so panels and alerts agree, and every query selects the cluster (``cluster_label``) and the scrape job of its
source (``selectors``), like the rules.

Variables: datasource; cluster (the cluster label your Prometheus adds by relabelling; "All" also matches series
without the label, so a single-cluster Prometheus needs nothing); node; load balancer; NAT gateway.

Where things are: :mod:`.panels` (panel builders), :mod:`.selectors` (label matchers), :mod:`.overview_row` and
:mod:`.snat_row` (the panels of each row), :mod:`.variables`; this module assembles the dashboards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from snat_exporter.generate.dashboards.overview_row import overview_panels
from snat_exporter.generate.dashboards.selectors import Sel
from snat_exporter.generate.dashboards.snat_row import snat_panels
from snat_exporter.generate.dashboards.variables import variables
from snat_exporter.generate.mixin import MixinConfig

ROW_TITLE = "Network: SNAT Activity"


def base(mixin: MixinConfig, title: str, uid: str, description: str) -> dash.Dashboard:
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(list(mixin.dashboards.tags))
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .timezone("browser")
        .refresh("1m")
    )
    # A relative runbook path (the default) means nothing to Grafana: link only a full URL.
    if mixin.runbook_url_base.startswith(("https://", "http://")):
        board = board.link(
            dash.DashboardLink("Runbook")
            .type(model.DashboardLinkType.LINK)
            .url(mixin.runbook_url_base)
            .target_blank(True)
            .icon("doc")
        )
    for var in variables(mixin, Sel.of(mixin)):
        board = board.with_variable(var)
    return board


def cluster_overview(mixin: MixinConfig) -> dict[str, Any]:
    s, t = Sel.of(mixin), mixin.thresholds
    board = base(
        mixin,
        mixin.dashboards.cluster_overview_title,
        mixin.dashboards.cluster_overview_uid,
        f"Cluster outbound health at a glance, with the {ROW_TITLE} row (snat-exporter).",
    )
    board = board.with_row(dash.Row("Overview"))
    for panel in overview_panels(s, t):
        board = board.with_panel(panel)
    board = board.with_row(dash.Row(ROW_TITLE))
    for panel in snat_panels(s, t):
        board = board.with_panel(panel)
    return to_dict(board)


def snat_activity(mixin: MixinConfig) -> dict[str, Any]:
    s, t = Sel.of(mixin), mixin.thresholds
    board = base(
        mixin,
        mixin.dashboards.snat_activity_title,
        mixin.dashboards.snat_activity_uid,
        "SNAT ports, connections and conntrack per node, NAT gateway capacity, top destinations and pods "
        "(snat-exporter).",
    )
    board = board.with_row(dash.Row(ROW_TITLE))
    for panel in snat_panels(s, t):
        board = board.with_panel(panel)
    return to_dict(board)


def to_dict(board: dash.Dashboard) -> dict[str, Any]:
    built = board.build()
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    # Stable panel ids in reading order: Grafana needs them unique, the drift check needs them fixed.
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    return data


DASHBOARDS: dict[str, Callable[[MixinConfig], dict[str, Any]]] = {
    "cluster-overview.json": cluster_overview,
    "snat-activity.json": snat_activity,
}


def dump(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def render(mixin: MixinConfig) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: dump(build(mixin)) for name, build in DASHBOARDS.items()}
