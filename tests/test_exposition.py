"""The cached exposition writes exactly what client_python would, in both formats, from one copy of the samples."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from snat_exporter.catalogue import MetricSpec
from snat_exporter.render import _Families, render_snapshot
from snat_exporter.snapshot import Families, Snapshot

SPECS = (
    MetricSpec("snat_test_ports", "gauge", 'Ports "used" \\ by a node.\nSecond line.', ("node", "ip"), source="fake"),
    MetricSpec("snat_test_failures_total", "counter", "Failed connections.", ("node", "state"), source="fake"),
    MetricSpec("snat_test_node_info", "info", "Node identity.", ("node", "zone"), source="fake"),
    MetricSpec("snat_test_up", "gauge", "No labels.", (), source="fake"),
)

label_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**60), 2**60).map(float), st.just(-0.0)
)
rows = st.lists(st.tuples(st.sampled_from(SPECS), label_values, label_values, values), max_size=20)


def families(data: list[tuple[MetricSpec, str, str, float]]) -> Families:
    f = Families()
    for spec in SPECS:
        f.declare(spec)  # families without samples still carry their HELP and TYPE
    for spec, a, b, value in data:
        f.add(spec, dict(zip(spec.labels, (a, b), strict=False)), value)
    return f


@settings(max_examples=200, deadline=None)
@given(rows)
def test_both_formats_are_byte_for_byte_what_client_python_writes(data) -> None:
    built = families(data).build()
    rendered = render_snapshot(Snapshot(built))
    assert b"".join(rendered.chunks(openmetrics=False)) == generate_latest(_Families(built))
    openmetrics = b"".join(rendered.chunks(openmetrics=True)) + b"# EOF\n"
    assert openmetrics == generate_openmetrics(_Families(built))


def test_gauge_counter_and_info_samples_are_stored_once_for_both_formats() -> None:
    built = families([(spec, "n1", "x", 2.0) for spec in SPECS]).build()
    rendered = render_snapshot(Snapshot(built))
    text, om = rendered.chunks(openmetrics=False), rendered.chunks(openmetrics=True)
    for i in range(1, len(text), 2):  # header, samples, header, samples, ...
        assert text[i] is om[i] and text[i]  # the very same bytes object, not a copy
    # and the parsers of both formats read the same series from them
    as_text = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in parse_text(b"".join(text).decode())
        for s in f.samples
    }
    as_om = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in parse_openmetrics((b"".join(om) + b"# EOF\n").decode())
        for s in f.samples
    }
    assert as_text == as_om and len(as_text) == len(SPECS)
    assert not any(math.isnan(v) for _, _, v in as_text)
