"""Hostile connections, generated: whatever bytes a client sends and however it leaves (closes, holds, half-closes),
the next scrape answers 200, nothing is logged at ERROR, and no connection outlives the header timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from tests.conftest import wait_until
from tests.web.certs import CA

PREFIXES = [
    b"GET /metrics HTTP/1.1\r\n",  # a header that never ends
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",  # a whole request, then the client goes
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",  # a body that never comes
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",  # a header line over aiohttp's limit
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # the start of a TLS ClientHello
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a broken chunk
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 preface
    b"",
]
client = st.tuples(
    st.one_of(st.sampled_from(PREFIXES), st.binary(max_size=300)),
    st.sampled_from(["close", "hold", "half-close", "reset"]),
)


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.asynccontextmanager
async def running(tmp_path: Path, tls: bool) -> AsyncIterator[tuple[Exporter, str, ssl.SSLContext | None]]:
    overrides = {"http.header_timeout": "300ms", "http.idle_timeout": "1s", "http.max_connections": "8"}
    context = None
    if tls:
        ca = CA()
        ca.write(tmp_path / "ca.crt")
        ca.issue("localhost", ips=("127.0.0.1",)).write(tmp_path / "tls.crt", tmp_path / "tls.key")
        (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
        overrides["web_config_file"] = str(tmp_path / "web.yml")
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    exporter = Exporter(load_config(None, environ={}, overrides=overrides), collectors=[])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        yield exporter, url, context
    finally:
        await exporter.stop()


async def _attack(port: int, behaviours: list[tuple[bytes, str]]) -> list[asyncio.StreamWriter]:
    held = []
    for data, action in behaviours:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if data:
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        if action == "close":
            writer.close()
        elif action == "half-close":
            with contextlib.suppress(OSError):
                writer.write_eof()
            held.append(writer)
        elif action == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()
        else:
            held.append(writer)
    return held


@pytest.fixture(params=[False, True], ids=["http", "https"])
async def door(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, ssl.SSLContext | None, ErrorLog]]:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        async with running(tmp_path, request.param) as (_, url, context):
            yield url, context, errors
    finally:
        logging.getLogger().removeHandler(errors)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(behaviours=st.lists(client, min_size=1, max_size=12))
async def test_generated_hostile_connections_never_break_a_scrape(
    door: tuple[str, ssl.SSLContext | None, ErrorLog], behaviours: list[tuple[bytes, str]]
) -> None:
    url, context, errors = door
    held = await _attack(int(url.rsplit(":", 1)[1]), behaviours)
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics", ssl=context or True) as resp:
            assert resp.status == 200
            assert "snat_exporter_build_info" in await resp.text()
    finally:
        for writer in held:
            writer.close()
    assert not errors.records, [r.getMessage() for r in errors.records]


async def test_held_hostile_connections_are_all_closed_in_time(tmp_path: Path) -> None:
    async with running(tmp_path, tls=True) as (exporter, url, _):
        listener = exporter.door.listener
        assert listener is not None
        port = int(url.rsplit(":", 1)[1])
        held = await _attack(port, [(p, "hold") for p in PREFIXES] + [(p, "half-close") for p in PREFIXES[:3]])
        await wait_until(lambda: not listener.connections, "every hostile connection closed", 10)
        for writer in held:
            writer.close()


async def test_malformed_requests_are_counted_not_logged(tmp_path: Path) -> None:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        async with running(tmp_path, tls=False) as (exporter, url, _):
            port = int(url.rsplit(":", 1)[1])
            for data in (PREFIXES[5], PREFIXES[6], PREFIXES[3]):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(data)
                assert b" 400 " in await reader.readline()
                head = await reader.readuntil(b"\r\n\r\n")
                assert b"Server: snat-exporter\r\n" in head and b"aiohttp" not in head  # no version, here too
                writer.close()
            closed = exporter.registry.get_sample_value(
                "snat_exporter_http_connections_closed_total", {"reason": "bad_request"}
            )
            assert closed == 3
    finally:
        logging.getLogger().removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
