"""Accept and Accept-Encoding with q-values: a client that says q=0 is saying no."""

from __future__ import annotations

import aiohttp
import pytest

from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.web.negotiation import wants_gzip, wants_openmetrics

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text; q=0.0, text/plain", False),
        ("text/plain;q=0.9, application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;q=bogus", True),
        ("*/*", False),
        ("", False),
        (",,;;=", False),
    ],
)
def test_accept(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(
    ("accept_encoding", "gzip"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("identity", False),
        ("", False),
    ],
)
def test_accept_encoding(accept_encoding: str, gzip: bool) -> None:
    assert wants_gzip(accept_encoding) is gzip


async def test_q_zero_is_honoured_over_http() -> None:
    exporter = Exporter(load_config(None, environ={}), collectors=[])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.get(url + "/metrics", headers={"Accept-Encoding": "gzip;q=0"}) as resp:
                assert "Content-Encoding" not in resp.headers
                assert (await resp.read()).startswith(b"#")
            headers = {"Accept": "application/openmetrics-text;q=0, text/plain", "Accept-Encoding": "identity"}
            async with s.get(url + "/metrics", headers=headers) as resp:
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert not (await resp.text()).endswith("# EOF\n")
            async with s.get(url + "/metrics", headers={"Accept": PROMETHEUS_ACCEPT}) as resp:
                assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    finally:
        await exporter.stop()
