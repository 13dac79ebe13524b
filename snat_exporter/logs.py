"""Logging: one line per event, logfmt-style ``key=value`` context, and secrets scrubbed before output."""

from __future__ import annotations

import logging
import os
import re
import sys

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Anything that looks like a credential is replaced, whatever logged it (our code, azure-core, msal, aiohttp), in the
# shapes it reaches us in: key=value and key: value pairs, JSON bodies (quoted keys and values, also escaped once
# more inside another string), URL-encoded forms (%3D is "=", %3A is ":"), camelCase keys, Authorization headers
# of any scheme, SAS signatures. A quoted value is replaced up to its closing quote (it may hold spaces).
_KEYS = (
    r"client[_-]?secret|client[_-]?assertion|access[_-]?token|refresh[_-]?token|id[_-]?token|assertion|password"
    r"|passwd|secret|token|sig|signature|api[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|code[_-]?verifier"
)
_QUOTE = r"""(?:\\*["'])"""  # a quote, possibly escaped (\" inside a JSON string)
_SEPARATOR = r"(?:\s*(?:[=:]|%3[dDaA])\s*)"
_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization" + _QUOTE + r"?" + _SEPARATOR + _QUOTE + r"?[A-Za-z-]+\s+)[^\s\"'\\,}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(
        r"(?i)((?<![A-Za-z0-9])(?:" + _KEYS + r")" + _QUOTE + r"?" + _SEPARATOR + r")"
        r"(?:" + _QUOTE + r"[^\"']*" + _QUOTE + r"|[^\s\"'\\&,;}]+)"
    ),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),  # a JWT
]
_SECRET_ENV = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "[REDACTED]")
    return text


def _quote(value: object) -> str:
    # Scrubbed before escaping: escaping turns the quotes of a JSON body into \\" and hides its keys from the patterns.
    text = redact(str(value))
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return redact(" ".join(parts))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDKs log every HTTP request at INFO; that is noise, and their headers are where tokens live.
    for noisy in ("azure", "msal", "kubernetes", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
