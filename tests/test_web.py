"""TLS and basic auth from an exporter-toolkit web-config.yml, through real HTTPS."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from snat_exporter.cli import main
from snat_exporter.config import load_config
from snat_exporter.server import Exporter

PASSWORD = "correct horse battery staple"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "tls.crt", tmp / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def web_config(tmp_path: Path) -> Path:
    cert, key = self_signed(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    )
    return path


async def test_tls_and_basic_auth(web_config: Path, tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides={"web_config_file": str(web_config)})
    exporter = Exporter(config, collectors=[])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    assert url.startswith("https://")
    client_ssl = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
    client_ssl.check_hostname = False
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl)) as s:
            async with s.get(url + "/metrics") as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Basic")
            async with s.get(url + "/metrics", headers=basic("prometheus", "wrong")) as resp:
                assert resp.status == 401
            for _ in range(2):  # the second one is served from the verified cache
                async with s.get(url + "/metrics", headers=basic("prometheus", PASSWORD)) as resp:
                    assert resp.status == 200
                    assert "snat_exporter_build_info" in await resp.text()
                    assert resp.headers["X-Content-Type-Options"] == "nosniff"
            async with s.get(url + "/healthz") as resp:  # probes need no credentials
                assert resp.status == 200
        # Plain http to the TLS port is refused.
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                async with s.get(url.replace("https://", "http://") + "/metrics") as resp:
                    await resp.read()
    finally:
        await exporter.stop()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "web_config_file.tls_server_config.cert_file",
        ),
        ("tls_server_config:\n  key_file: x.key\n", "web_config_file.tls_server_config.cert_file"),
        (
            "tls_server_config:\n  cipher_suites: [x]\n  cert_file: a\n  key_file: b\n",
            "web_config_file.tls_server_config.cipher_suites",
        ),
        ("basic_auth_users:\n  alice: plaintext\n", "web_config_file.basic_auth_users.alice"),
        ("bogus: 1\n", "web_config_file.bogus"),
    ],
)
def test_bad_web_config_exits_2_naming_the_field(tmp_path: Path, capsys, text: str, field: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text)
    config = tmp_path / "exporter.yaml"
    config.write_text(f"web_config_file: {web}\n")
    assert main(["check-config", str(config)]) == 2
    assert f"config error: {field}:" in capsys.readouterr().err
