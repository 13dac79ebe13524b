"""Panel builders every row uses: a graph, a top list, a single stat, their queries, thresholds and overrides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")


def pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


GREEN, YELLOW, ORANGE, RED = "green", "yellow", "orange", "red"

# Panel builders share this shape; timeseries, stat and bargauge all have these methods.
PanelBuilder = Any


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def targets(panel: PanelBuilder, queries: list[Query]) -> PanelBuilder:
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        target = prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref)
        target = target.instant() if q.instant else target.range()
        panel = panel.with_target(target)
    return panel


def graph(
    title: str,
    description: str,
    queries: list[Query],
    *,
    unit: str,
    steps: list[tuple[float | None, str]],
    width: int = 12,
    height: int = 8,
    min_val: float | None = 0,
    max_val: float | None = None,
    threshold_lines: bool = True,
    overrides: Callable[[PanelBuilder], PanelBuilder] | None = None,
) -> PanelBuilder:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds(*steps))
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
            .sort_by("Max")
            .sort_desc(True)
        )
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
    )
    if threshold_lines:
        panel = panel.thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    if overrides is not None:
        panel = overrides(panel)
    return targets(panel, queries)


def top_list(
    title: str, description: str, query: Query, *, unit: str, steps: list[tuple[float | None, str]]
) -> PanelBuilder:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .thresholds(thresholds(*steps))
        .span(12)
        .height(8)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return targets(panel, [query])


def single_stat(
    title: str, description: str, query: Query, *, unit: str, steps: list[tuple[float | None, str]]
) -> PanelBuilder:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds(*steps))
        .span(6)
        .height(4)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return targets(panel, [query])


def failed_in_red(panel: PanelBuilder) -> PanelBuilder:
    """Failed connections must stand out among the far more numerous successful ones."""
    return panel.override_by_regexp(
        ".*failed.*",
        [
            model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": RED}),
            model.DynamicConfigValue(id_val="custom.lineWidth", value=3),
            model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
        ],
    )


def limits_dashed(panel: PanelBuilder) -> PanelBuilder:
    return panel.override_by_regexp(
        ".*(allocated|limit).*",
        [
            model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )
