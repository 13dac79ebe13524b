"""Server TLS from ``tls_server_config``, following certificate rotation on disk.

exporter-toolkit builds its TLS config for every new connection from the files, so a certificate renewed by
cert-manager (a Secret volume swaps its files atomically) is served from the next connection on, without a
restart. Here each new connection stats the certificate, key and client CA files (microseconds), and the context is
rebuilt only when one of them changed. A rotation caught half-way (a new certificate with the old key) fails to
load: the previous context keeps serving and the failure is logged once per change of the files, so a scrape never
breaks because of a rotation in progress.

``client_allowed_sans``: a verified client certificate must carry one of these names (DNS, IP, e-mail or URI SAN,
exact match), else the connection is closed before any request is read.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("snat_exporter.web.tls")

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
KEYS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
}


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())


def parse_tls(
    where: str, tls: Mapping[str, Any], relative_to: Path, problems: list[tuple[str, str]]
) -> TLSSettings | None:
    """Check ``tls_server_config`` and load it once, so that a bad file fails start-up and check-config."""

    def path_of(key: str) -> Path | None:
        value = tls.get(key)
        if value is None:
            return None
        p = Path(str(value))
        return p if p.is_absolute() else relative_to / p  # the toolkit resolves paths against the file's folder

    for name in tls:
        if name not in KEYS:
            problems.append((f"{where}.{name}", f"not supported (supported: {', '.join(sorted(KEYS))})"))
    cert, key = path_of("cert_file"), path_of("key_file")
    if cert is None or key is None:
        problems.append((f"{where}.cert_file" if cert is None else f"{where}.key_file", "required with TLS"))
        return None
    before = len(problems)
    for bound in ("min_version", "max_version"):
        if bound in tls and str(tls[bound]) not in TLS_VERSIONS:
            problems.append((f"{where}.{bound}", f"expected one of {', '.join(TLS_VERSIONS)}"))
    auth_type = str(tls.get("client_auth_type", "NoClientCert"))
    if auth_type not in CLIENT_AUTH:
        problems.append((f"{where}.client_auth_type", f"expected one of {', '.join(CLIENT_AUTH)}"))
    ca = path_of("client_ca_file")
    if auth_type in VERIFYING and ca is None:
        problems.append((f"{where}.client_ca_file", f"required with client_auth_type {auth_type}"))
    sans = tls.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str | int) for s in sans):
        problems.append((f"{where}.client_allowed_sans", "expected a list of names"))
        sans = []
    elif sans and auth_type not in VERIFYING:
        # The SAN of a certificate nobody verified proves nothing.
        problems.append((f"{where}.client_allowed_sans", f"needs client_auth_type {' or '.join(VERIFYING)}"))
    if len(problems) > before:
        return None
    settings = TLSSettings(
        cert_file=cert,
        key_file=key,
        client_auth_type=auth_type,
        client_ca_file=ca,
        client_allowed_sans=tuple(str(s) for s in sans),
        min_version=str(tls.get("min_version", "TLS12")),
        max_version=str(tls["max_version"]) if "max_version" in tls else None,
    )
    try:
        build_context(settings)
    except TLSLoadError as e:
        problems.append((f"{where}.{e.field}", str(e)))
        return None
    return settings


class TLSLoadError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def build_context(settings: TLSSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings.min_version]
    if settings.max_version is not None:
        context.maximum_version = TLS_VERSIONS[settings.max_version]
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as e:
        raise TLSLoadError("cert_file", f"cannot load {settings.cert_file} / {settings.key_file}: {e}") from None
    context.verify_mode = CLIENT_AUTH[settings.client_auth_type]
    if settings.client_auth_type in VERIFYING and settings.client_ca_file is not None:
        try:
            context.load_verify_locations(settings.client_ca_file)
        except (OSError, ssl.SSLError) as e:
            raise TLSLoadError("client_ca_file", f"cannot load {settings.client_ca_file}: {e}") from None
    return context


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)  # follows the ..data symlink of a Secret volume to the current files
        except OSError:
            out.append((0, 0, -1))
        else:
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class RotatingTLS:
    """The server's TLS context for the next connection, rebuilt when its files change on disk."""

    def __init__(self, settings: TLSSettings, on_reload: Callable[[str], None] = lambda result: None):
        self.settings = settings
        self._signature = _signature(settings.files)
        self._context = build_context(settings)
        self._failed_signature: tuple[tuple[int, int, int], ...] | None = None
        self._on_reload = on_reload  # "ok" or "error": counted by the caller

    def context(self) -> ssl.SSLContext:
        signature = _signature(self.settings.files)
        if signature != self._signature and signature != self._failed_signature:
            try:
                context = build_context(self.settings)
            except TLSLoadError as e:
                # Logged once per state of the files: the next change (the key arriving) is tried again.
                self._failed_signature = signature
                self._on_reload("error")
                log.warning(
                    "cannot load the changed TLS files; still serving the previous ones", extra={"error": str(e)}
                )
            else:
                self._context, self._signature, self._failed_signature = context, signature, None
                self._on_reload("ok")
                log.info(
                    "TLS files changed: serving the new certificate", extra={"cert_file": str(self.settings.cert_file)}
                )
        return self._context

    def peer_allowed(self, peercert: Mapping[str, Any] | None) -> bool:
        """True when ``client_allowed_sans`` is empty, or the verified client certificate names one of them."""
        allowed = self.settings.client_allowed_sans
        if not allowed:
            return True
        if not peercert:
            return False
        names = {_normalise(kind, value) for kind, value in peercert.get("subjectAltName", ())}
        return any(_normalise(None, a) in names for a in allowed)


def _normalise(kind: str | None, value: str) -> str:
    # Python writes IPv6 SANs as 2001:DB8:0:0:0:0:0:1; the config may say 2001:db8::1.
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value
