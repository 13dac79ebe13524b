"""TLS that follows rotation on disk (as a Kubernetes Secret volume swaps it) and client_allowed_sans."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.web.tls import RotatingTLS, TLSSettings
from tests.web.certs import CA, Issued


class SecretVolume:
    """Files laid out as the kubelet mounts a Secret: tls.crt -> ..data/tls.crt, ..data -> ..<version>/, and an
    update swaps the ..data symlink in one rename."""

    def __init__(self, root: Path):
        self.root = root
        self.version = 0
        for name in ("tls.crt", "tls.key", "ca.crt"):
            (root / name).symlink_to(f"..data/{name}")

    def publish(self, files: dict[str, bytes]) -> None:
        self.version += 1
        folder = self.root / f"..v{self.version}"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        (self.root / "..data_tmp").symlink_to(folder.name)
        os.rename(self.root / "..data_tmp", self.root / "..data")


def pem(issued: Issued, tmp: Path) -> dict[str, bytes]:
    cert, key = issued.write(tmp / "c.pem", tmp / "k.pem")
    return {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}


async def served_serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_a_rotated_certificate_is_served_on_the_next_connection(tmp_path: Path) -> None:
    ca = CA()
    ca_file = ca.write(tmp_path / "ca.pem")
    volume_dir = tmp_path / "secret"
    volume_dir.mkdir()
    volume = SecretVolume(volume_dir)
    first = ca.issue("localhost", dns=("localhost",))
    volume.publish(pem(first, tmp_path))
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {volume_dir}/tls.crt\n  key_file: {volume_dir}/tls.key\n")
    exporter = Exporter(load_config(None, environ={}, overrides={"web_config_file": str(web)}), collectors=[])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    port = int(url.rsplit(":", 1)[1])
    try:
        assert await served_serial(port, ca_file) == first.serial
        second = ca.issue("localhost", dns=("localhost",))
        volume.publish(pem(second, tmp_path))
        assert await served_serial(port, ca_file) == second.serial  # no restart
        # A rotation caught half-way (a new certificate with the old key) keeps the working pair, counted.
        third = ca.issue("localhost", dns=("localhost",))
        half = pem(third, tmp_path)
        half["tls.key"] = pem(second, tmp_path)["tls.key"]
        volume.publish(half)
        assert await served_serial(port, ca_file) == second.serial
        assert await served_serial(port, ca_file) == second.serial  # the same broken files are not retried
        volume.publish(pem(third, tmp_path))
        assert await served_serial(port, ca_file) == third.serial
        reloads = {
            result: exporter.registry.get_sample_value("snat_exporter_http_tls_reloads_total", {"result": result})
            for result in ("ok", "error")
        }
        assert reloads == {"ok": 2, "error": 1}
        async with aiohttp.ClientSession() as s:
            context = ssl.create_default_context(cafile=str(ca_file))
            async with s.get(url.replace("127.0.0.1", "localhost") + "/metrics", ssl=context) as resp:
                assert resp.status == 200
    finally:
        await exporter.stop()


@pytest.fixture
def mtls(tmp_path: Path) -> tuple[CA, Path]:
    ca = CA()
    ca.write(tmp_path / "ca.pem")
    ca.issue("localhost", dns=("localhost",)).write(tmp_path / "tls.crt", tmp_path / "tls.key")
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: ca.pem\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_allowed_sans: [prometheus.monitoring.svc, 2001:db8::1]\n"
    )
    return ca, web


def client_context(tmp_path: Path, ca: CA, issued: Issued, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    cert, key = issued.write(tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
    context.load_cert_chain(cert, key)
    return context


async def test_client_certificate_with_another_san_is_refused(tmp_path: Path, mtls: tuple[CA, Path]) -> None:
    ca, web = mtls
    exporter = Exporter(load_config(None, environ={}, overrides={"web_config_file": str(web)}), collectors=[])
    url = (await exporter.start(host="127.0.0.1", port=0, background=False)).replace("127.0.0.1", "localhost")
    allowed = client_context(tmp_path, ca, ca.issue("prom", dns=("prometheus.monitoring.svc",), client=True), "a")
    by_ip = client_context(tmp_path, ca, ca.issue("prom6", ips=("2001:db8:0::1",), client=True), "b")
    other = client_context(tmp_path, ca, ca.issue("intruder", dns=("intruder.example",), client=True), "c")
    stranger_ca = CA("another-ca")
    foreign = client_context(
        tmp_path, stranger_ca, stranger_ca.issue("p", dns=("prometheus.monitoring.svc",), client=True), "d"
    )
    try:
        for context in (allowed, by_ip):
            async with aiohttp.ClientSession() as s, s.get(url + "/metrics", ssl=context) as resp:
                assert resp.status == 200
        for context in (other, foreign):
            with pytest.raises(aiohttp.ClientError):
                async with aiohttp.ClientSession() as s, s.get(url + "/metrics", ssl=context) as resp:
                    await resp.read()
        closed = {
            reason: exporter.registry.get_sample_value(
                "snat_exporter_http_connections_closed_total", {"reason": reason}
            )
            for reason in ("client_san", "tls_handshake")
        }
        # The wrong name is refused after the handshake (aiohttp tries such a request twice); the unknown CA in it.
        assert closed["client_san"] and closed["tls_handshake"], closed
    finally:
        await exporter.stop()


def test_allowed_sans_match_exactly(tmp_path: Path) -> None:
    ca = CA()
    cert, key = ca.issue("localhost", dns=("localhost",)).write(tmp_path / "t.crt", tmp_path / "t.key")
    tls = RotatingTLS(
        TLSSettings(cert, key, "RequireAndVerifyClientCert", ca.write(tmp_path / "ca.pem"), ("prometheus", "10.0.0.1"))
    )
    assert tls.peer_allowed({"subjectAltName": (("DNS", "prometheus"),)})
    assert tls.peer_allowed({"subjectAltName": (("IP Address", "10.0.0.1"),)})
    assert not tls.peer_allowed({"subjectAltName": (("DNS", "prometheus.evil"),)})
    assert not tls.peer_allowed({"subjectAltName": (("DNS", "*.prometheus"),)})
    assert not tls.peer_allowed({"subject": ((("commonName", "prometheus"),),)})  # the CN is not a SAN
    assert not tls.peer_allowed(None)


async def test_min_and_max_version_bound_the_handshake(tmp_path: Path) -> None:
    ca = CA()
    ca_file = ca.write(tmp_path / "ca.pem")
    ca.issue("localhost", dns=("localhost",)).write(tmp_path / "tls.crt", tmp_path / "tls.key")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS13\n")
    exporter = Exporter(load_config(None, environ={}, overrides={"web_config_file": str(web)}), collectors=[])
    url = (await exporter.start(host="127.0.0.1", port=0, background=False)).replace("127.0.0.1", "localhost")
    try:
        tls12 = ssl.create_default_context(cafile=str(ca_file))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s, s.get(url + "/healthz", ssl=tls12) as resp:
                await resp.read()
        tls13 = ssl.create_default_context(cafile=str(ca_file))
        async with aiohttp.ClientSession() as s, s.get(url + "/healthz", ssl=tls13) as resp:
            assert resp.status == 200
    finally:
        await exporter.stop()
