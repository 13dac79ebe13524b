"""The metric catalogue: every exported series, gathered from each collector's ``metrics.py``.

Self-metrics of the exporter itself (``snat_exporter_*``) are declared here; the docs reference
(``docs/metrics.md``) and the cross-checks of ``alerts/`` and ``dashboards/`` are generated from this list.
"""

from __future__ import annotations

from snat_exporter.catalogue import MetricSpec, check_unique

COLLECTOR_SUCCESS = MetricSpec(
    "snat_exporter_collector_success",
    "gauge",
    "1 if the collector's last run succeeded, 0 if it failed.",
    ("collector",),
)
COLLECTOR_DURATION = MetricSpec(
    "snat_exporter_collector_duration_seconds",
    "gauge",
    "Wall time of the collector's last run.",
    ("collector",),
)
COLLECTOR_LAST_SUCCESS = MetricSpec(
    "snat_exporter_collector_last_success_timestamp_seconds",
    "gauge",
    "Unix time at which the collector last succeeded.",
    ("collector",),
)
COLLECTOR_DATA_AGE = MetricSpec(
    "snat_exporter_collector_data_age_seconds",
    "gauge",
    "Age of the data served for this collector: seconds since its last successful run. Data older than the "
    "collector's max_age is dropped.",
    ("collector",),
)
COLLECTOR_STALE = MetricSpec(
    "snat_exporter_collector_stale",
    "gauge",
    "1 if the collector's served data comes from an earlier run because later runs failed, else 0.",
    ("collector",),
)
COLLECTOR_ERRORS = MetricSpec(
    "snat_exporter_collector_errors_total",
    "counter",
    "Failed collector runs, by reason (timeout, throttled, http_5xx, malformed, auth, unreachable, ...).",
    ("collector", "reason"),
)
COLLECTOR_INTERVAL = MetricSpec(
    "snat_exporter_collector_interval_seconds",
    "gauge",
    "Configured interval between runs of the collector.",
    ("collector",),
)
BUILD_INFO = MetricSpec(
    "snat_exporter_build_info",
    "info",
    "Version of snat-exporter (as `snat-exporter --version` prints it), the source revision it was built from "
    "(`unknown` when not baked in) and the version of the Python running it.",
    ("version", "revision", "python_version"),
)
EXPOSITION_ERRORS = MetricSpec(
    "snat_exporter_exposition_errors_total",
    "counter",
    "Collectors whose series could not be rendered for a scrape (their block was left out; the scrape went on).",
    ("collector",),
)

CORE_SPECS = (
    COLLECTOR_SUCCESS,
    COLLECTOR_DURATION,
    COLLECTOR_LAST_SUCCESS,
    COLLECTOR_DATA_AGE,
    COLLECTOR_STALE,
    COLLECTOR_ERRORS,
    COLLECTOR_INTERVAL,
    BUILD_INFO,
    EXPOSITION_ERRORS,
)


def all_specs() -> dict[str, MetricSpec]:
    """Every declared series by name. Collector modules are imported here, not at import time of this module."""
    from snat_exporter.collectors import catalogue_modules
    from snat_exporter.web.metrics import SPECS as WEB_SPECS

    specs: list[MetricSpec] = [*CORE_SPECS, *WEB_SPECS]
    for module in catalogue_modules():
        specs.extend(module.SPECS)
    return check_unique(specs)
