"""TLS, basic auth and headers from an exporter-toolkit web-config.yml, through real HTTPS."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from snat_exporter import __version__
from snat_exporter.cli import main
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.web import basic as basic_auth
from tests.web.certs import CA

PASSWORD = "correct horse battery staple"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def self_signed(tmp: Path) -> tuple[Path, Path]:
    return CA().issue("localhost", dns=("localhost",)).write(tmp / "tls.crt", tmp / "tls.key")


@pytest.fixture
def web_config(tmp_path: Path) -> Path:
    ca = CA()
    ca.write(tmp_path / "ca.crt")
    cert, key = ca.issue("localhost", dns=("localhost",)).write(tmp_path / "tls.crt", tmp_path / "tls.key")
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
    client_ssl = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
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
        # Looks like bcrypt but is not: bcrypt raised on every request (500 and a traceback) before.
        ("basic_auth_users:\n  bob: '$2b$10$tooshort'\n", "web_config_file.basic_auth_users.bob"),
        ("basic_auth_users:\n  carol: '$2b$99$" + "a" * 53 + "'\n", "web_config_file.basic_auth_users.carol"),
        ("http_server_config:\n  headers: [x]\n", "web_config_file.http_server_config.headers"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [prometheus]\n",
            "web_config_file.tls_server_config.client_allowed_sans",
        ),
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


async def test_headers_on_every_answer_and_no_version_in_server(web_config: Path, tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides={"web_config_file": str(web_config)})
    exporter = Exporter(config, collectors=[])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    client_ssl = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl)) as s:
            for path, auth, status in (
                ("/metrics", {}, 401),
                ("/nope", basic("prometheus", PASSWORD), 404),
                ("/metrics", basic("prometheus", PASSWORD), 200),
                ("/healthz", {}, 200),
            ):
                async with s.get(url.replace("127.0.0.1", "localhost") + path, headers=auth) as resp:
                    assert resp.status == status, path
                    assert resp.headers["X-Content-Type-Options"] == "nosniff", (path, status)
                    assert resp.headers["Server"] == "snat-exporter"
                    assert "Python" not in resp.headers["Server"] and __version__ not in resp.headers["Server"]
    finally:
        await exporter.stop()


async def test_unknown_user_costs_a_full_bcrypt_like_a_wrong_password(monkeypatch) -> None:
    """Timing must not tell which users exist: an unknown user is checked against a dummy hash of the users' cost."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5))
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, against: bytes) -> bool:
        checked.append(against)
        return real(password, against)

    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", spy)
    auth = basic_auth.BasicAuth({"prometheus": hashed})
    assert not await auth.check(basic_header("prometheus", "wrong"))
    assert not await auth.check(basic_header("mallory", "wrong"))
    assert len(checked) == 2
    assert checked[0] == hashed
    assert checked[1] != hashed and checked[1][:7] == hashed[:7]  # same algorithm and cost: same time
    assert await auth.check(basic_header("prometheus", PASSWORD))


def basic_header(user: str, password: str) -> str:
    return basic(user, password)["Authorization"]
