"""TLS and basic auth for the HTTP server, configured with the Prometheus exporter-toolkit ``web-config.yml``.

The same file format node_exporter and every Go exporter read (``--web.config.file``), so users reuse what they
know: ``tls_server_config`` (cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version),
``http_server_config.headers`` and ``basic_auth_users`` (user: bcrypt hash). Options of the Go toolkit that have
no meaning here (cipher suites, curve preferences, http2) are refused with a message rather than ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from snat_exporter.settings import ConfigError

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Probes must work without credentials; these paths reveal nothing but "the process answers".
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str], problems: list[tuple[str, str]]) -> None:
    for key in data:
        if key not in allowed:
            problems.append((f"{where}.{key}", f"not supported (supported: {', '.join(sorted(allowed))})"))


def load_web_config(path: str) -> WebConfig:
    """Parse and check the file once at start-up; every problem names its field under ``web_config_file``."""
    base = "web_config_file"
    problems: list[tuple[str, str]] = []
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError([(base, f"cannot read {path}: {e}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([(base, "expected a mapping")])
    _check_keys(base, data, {"tls_server_config", "http_server_config", "basic_auth_users"}, problems)
    ssl_context = None
    tls = data.get("tls_server_config")
    if tls is not None:
        where = f"{base}.tls_server_config"
        if not isinstance(tls, dict):
            problems.append((where, "expected a mapping"))
        else:
            _check_keys(
                where,
                tls,
                {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"},
                problems,
            )
            ssl_context = _tls_context(where, tls, Path(path).parent, problems)
    users: dict[str, bytes] = {}
    raw_users = data.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        problems.append((f"{base}.basic_auth_users", "expected a mapping of user: bcrypt hash"))
    else:
        for user, hashed in raw_users.items():
            text = str(hashed)
            if not text.startswith(("$2a$", "$2b$", "$2y$")):
                problems.append((f"{base}.basic_auth_users.{user}", "expected a bcrypt hash ($2a$/$2b$/$2y$...)"))
            users[str(user)] = text.encode()
    headers: dict[str, str] = {}
    http = data.get("http_server_config") or {}
    if not isinstance(http, dict):
        problems.append((f"{base}.http_server_config", "expected a mapping"))
    else:
        _check_keys(f"{base}.http_server_config", http, {"headers"}, problems)
        headers = {str(k): str(v) for k, v in (http.get("headers") or {}).items()}
    if problems:
        raise ConfigError(problems)
    return WebConfig(ssl_context=ssl_context, users=users, headers=headers)


def _tls_context(
    where: str, tls: Mapping[str, Any], relative_to: Path, problems: list[tuple[str, str]]
) -> ssl.SSLContext | None:
    def path_of(key: str) -> Path | None:
        value = tls.get(key)
        if value is None:
            return None
        p = Path(str(value))
        return p if p.is_absolute() else relative_to / p  # the toolkit resolves paths against the file's folder

    cert, key = path_of("cert_file"), path_of("key_file")
    if cert is None or key is None:
        problems.append((f"{where}.cert_file" if cert is None else f"{where}.key_file", "required with TLS"))
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS.get(str(tls.get("min_version", "TLS12")), ssl.TLSVersion.TLSv1_2)
    for bound in ("min_version", "max_version"):
        if bound in tls and str(tls[bound]) not in TLS_VERSIONS:
            problems.append((f"{where}.{bound}", f"expected one of {', '.join(TLS_VERSIONS)}"))
    if "max_version" in tls and str(tls["max_version"]) in TLS_VERSIONS:
        context.maximum_version = TLS_VERSIONS[str(tls["max_version"])]
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        problems.append((f"{where}.cert_file", f"cannot load {cert} / {key}: {e}"))
        return None
    auth_type = str(tls.get("client_auth_type", "NoClientCert"))
    if auth_type not in CLIENT_AUTH:
        problems.append((f"{where}.client_auth_type", f"expected one of {', '.join(CLIENT_AUTH)}"))
        return None
    context.verify_mode = CLIENT_AUTH[auth_type]
    ca = path_of("client_ca_file")
    if auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        if ca is None:
            problems.append((f"{where}.client_ca_file", f"required with client_auth_type {auth_type}"))
            return None
        try:
            context.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as e:
            problems.append((f"{where}.client_ca_file", f"cannot load {ca}: {e}"))
    return context


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BasicAuth:
    """aiohttp middleware. bcrypt is slow on purpose, so a verified (user, password) pair is remembered by a
    keyed digest, and the check itself runs off the event loop: a scrape never waits behind a hash."""

    def __init__(self, users: Mapping[str, bytes]):
        self.users = dict(users)
        self._verified: set[bytes] = set()
        self._key = hashlib.sha256(b"".join(sorted(self.users.values()))).digest()

    def _digest(self, user: str, password: str) -> bytes:
        return hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()

    async def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return False
        digest = self._digest(user, password)
        if digest in self._verified:
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        if ok:
            self._verified.add(digest)
        return ok

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in UNAUTHENTICATED_PATHS and not await self.check(request.headers.get("Authorization")):
            return web.Response(
                status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="snat-exporter"'}
            )
        return await handler(request)


def headers_middleware(headers: Mapping[str, str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.update(headers)
        return response

    return add_headers
