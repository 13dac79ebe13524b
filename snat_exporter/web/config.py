"""The exporter-toolkit ``web-config.yml`` (TLS, basic auth, response headers), parsed and checked at load.

The same file format node_exporter and every Go exporter read (``--web.config.file``), so users reuse what they
know: ``tls_server_config`` (cert_file, key_file, client_auth_type, client_ca_file, client_allowed_sans,
min_version, max_version), ``http_server_config.headers`` and ``basic_auth_users`` (user: bcrypt hash). Options of
the Go toolkit that have no meaning here (cipher suites, curve preferences, http2) are refused with a message
rather than ignored. Certificate files are re-read when they change (see ``tls``); the rest is read at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from snat_exporter.settings import ConfigError
from snat_exporter.web.tls import TLSSettings, parse_tls

# $2a$/$2b$/$2y$, a two-digit cost 04-31, then 22 characters of salt and 31 of hash in bcrypt's base64: anything
# else makes bcrypt raise on the first request, so it is refused here, naming the user.
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


@dataclass(frozen=True)
class WebConfig:
    tls: TLSSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)


def _check_keys(where: str, data: Mapping[str, Any], allowed: set[str], problems: list[tuple[str, str]]) -> None:
    for key in data:
        if key not in allowed:
            problems.append((f"{where}.{key}", f"not supported (supported: {', '.join(sorted(allowed))})"))


def load_web_config(path: str) -> WebConfig:
    """Parse and check the file; every problem names its field under ``web_config_file``."""
    base = "web_config_file"
    problems: list[tuple[str, str]] = []
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError([(base, f"cannot read {path}: {e}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([(base, "expected a mapping")])
    _check_keys(base, data, {"tls_server_config", "http_server_config", "basic_auth_users"}, problems)
    tls_settings = None
    tls = data.get("tls_server_config")
    if tls is not None:
        where = f"{base}.tls_server_config"
        if not isinstance(tls, dict):
            problems.append((where, "expected a mapping"))
        else:
            tls_settings = parse_tls(where, tls, Path(path).parent, problems)
    users: dict[str, bytes] = {}
    raw_users = data.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        problems.append((f"{base}.basic_auth_users", "expected a mapping of user: bcrypt hash"))
    else:
        for user, hashed in raw_users.items():
            text = str(hashed)
            if not _BCRYPT.match(text):
                problems.append(
                    (f"{base}.basic_auth_users.{user}", "not a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31, 53 characters)")
                )
            users[str(user)] = text.encode()
    headers: dict[str, str] = {}
    http = data.get("http_server_config") or {}
    if not isinstance(http, dict):
        problems.append((f"{base}.http_server_config", "expected a mapping"))
    else:
        _check_keys(f"{base}.http_server_config", http, {"headers"}, problems)
        raw_headers = http.get("headers") or {}
        if not isinstance(raw_headers, dict):
            problems.append((f"{base}.http_server_config.headers", "expected a mapping of header: value"))
        else:
            headers = {str(k): str(v) for k, v in raw_headers.items()}
    if problems:
        raise ConfigError(problems)
    return WebConfig(tls=tls_settings, users=users, headers=headers)
