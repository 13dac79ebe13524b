"""The health alerts: the exporter down, a collector failing, stale data, Azure Monitor data late.

They fire when the data a SNAT alert needs is missing, so silence never means "all good" by accident."""

from __future__ import annotations

from snat_exporter.azure_facts import every_cycle_metrics
from snat_exporter.generate.rules.model import Context, DrillDown, Group, Rule, words
from snat_exporter.settings import format_duration


def exporter_alerts(k: Context) -> Group:
    t, c = k.t, k.c
    lbl = k.label
    for_words = k.for_words
    lookback = format_duration(t.exporter_down_lookback)
    up = k.both("up")
    return Group(
        "snat-exporter.exporter",
        (
            Rule(
                alert="SnatExporterDown",
                expr=f"group by ({c}) (max_over_time({k.x('up')}[{lookback}]) or max_over_time({k.a('up')}[{lookback}]))\n"
                f"unless on ({c})\n"
                f"group by ({c}) ({k.x('up')} == 1 or {k.a('up')} == 1)",
                summary="No snat-exporter target is up; SNAT exhaustion would go unnoticed.",
                description=(
                    f"Prometheus has not scraped any snat-exporter target{k.in_cluster} successfully for "
                    f"{for_words('SnatExporterDown')}, so none of the SNAT alerts can fire.",
                ),
                comment=f"Per cluster: a cluster whose targets all fail, or vanish from discovery, fires on its own (for\n"
                f"{lookback} after they were last seen), however many other clusters this Prometheus holds.",
            ),
            Rule(
                alert="SnatExporterTargetDown",
                expr=f"{up} == 0",
                summary="A snat-exporter target cannot be scraped.",
                description=(
                    f"Prometheus cannot scrape {lbl('instance')} (job {lbl('job')}){k.in_cluster}: its node's SNAT and "
                    "conntrack data is missing.",
                ),
            ),
            Rule(
                alert="SnatExporterCollectorFailing",
                expr=f"{k.both('snat_exporter_collector_success')} == 0",
                summary="A snat-exporter collector keeps failing.",
                description=(
                    f"The {lbl('collector')} collector of {lbl('instance')} has failed every run for "
                    f"{for_words('SnatExporterCollectorFailing')}",
                    DrillDown(
                        ' {{- with printf "topk(1, increase(snat_exporter_collector_errors_total{'
                        f'{c}=%q, instance=%q, collector=%q}}[15m]))" $labels.{c} $labels.instance $labels.collector '
                        "| query }}{{ with . | first }} (mostly: {{ .Labels.reason }}){{ end }}{{ end }}"
                    ),
                    ". Its data is served stale until max_age, then dropped.",
                ),
            ),
            Rule(
                alert="SnatExporterDataStale",
                expr=f"{k.both('snat_exporter_collector_stale')} == 1",
                summary="The exporter is serving old data.",
                description=(
                    f"The {lbl('collector')} collector of {lbl('instance')} has served data from an earlier run for "
                    f"{for_words('SnatExporterDataStale')}",
                    DrillDown(
                        ' (now {{ with printf "snat_exporter_collector_data_age_seconds{'
                        f'{c}=%q, instance=%q, collector=%q}}" $labels.{c} $labels.instance $labels.collector '
                        "| query }}{{ . | first | value | humanizeDuration }}{{ end }} old)"
                    ),
                    "; alerts on it may be late or miss a change.",
                ),
            ),
            Rule(
                alert="SnatAzureMetricsDelayed",
                expr="max without (metric) ("
                f"{k.x('azure_metric_sample_age_seconds', 'metric=~' + chr(34) + '|'.join(every_cycle_metrics()) + chr(34))})\n"
                f"> {t.azure_metric_age:g}",
                summary=f"Azure Monitor SNAT metrics are more than {words(t.azure_metric_age)} old.",
                description=(
                    f"The newest Azure Monitor data point of {lbl('resource_type')} {lbl('resource')} is "
                    "{{ $value | humanizeDuration }} old; SNAT alerts on it are late.",
                ),
                comment="Azure Monitor normally lags 2-10 minutes. Older than the threshold means Azure stopped publishing the\n"
                "metric (or the resource stopped reporting), even though the collector's requests succeed. Only the\n"
                "metrics queried every cycle (those the SNAT alerts read; every_cycle_metrics() in\n"
                "snat_exporter/azure_facts.py): the secondary ones are asked every `secondary_interval` (10m), so on\n"
                "top of Azure's lag a healthy exporter serves them up to ~20 minutes old.",
            ),
        ),
    )
