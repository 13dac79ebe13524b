"""What an Azure failure means: the runner's reason label, the Retry-After an answer asked for, and a short,
secret-free description for logs and the landing page."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from collections.abc import Mapping

from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

from snat_exporter.logs import redact


class CredentialSetupError(Exception):
    """The configured credential cannot be built (missing environment, bad settings)."""


def error_reason(exc: BaseException) -> tuple[str, float | None]:
    """The runner's reason label for an Azure failure, and the server's Retry-After hint when it gave one."""
    if isinstance(exc, CredentialSetupError | ClientAuthenticationError):
        return "auth", None
    if isinstance(exc, TimeoutError | ServiceRequestTimeoutError | ServiceResponseTimeoutError):
        return "timeout", None
    if isinstance(exc, DecodeError | DeserializationError | ValueError):
        return "malformed", None
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        retry_after = _retry_after(exc)
        if status in (429, 529):
            return "throttled", retry_after
        if status >= 500:
            return "http_5xx", retry_after
        if status == 401:
            return "auth", None
        if status == 403:
            return "permission_denied", None
        if status == 404:
            return "not_found", None
        return "http_4xx", None
    if isinstance(exc, ServiceRequestError | ServiceResponseError | OSError):
        return "unreachable", None
    return "internal", None


def _retry_after(exc: HttpResponseError) -> float | None:
    response = exc.response
    if response is None:
        return None
    return retry_after_seconds(getattr(response, "headers", None) or {})


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait an answer asks for, in seconds: ``Retry-After`` (seconds or an HTTP date), else ``retry-after-ms``
    or ``x-ms-retry-after-ms``. None when absent or unreadable. The one parser, for the retry policy and the
    runner's back-off alike."""
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    for name, scale in (("retry-after", 1.0), ("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001)):
        value = lowered.get(name)
        if not value:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            if scale != 1.0:
                return None
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return None


# Lines of azure-identity's messages that point at docs rather than say what failed.
_BOILERPLATE = re.compile(
    r"(?i)^(to mitigate this issue|visit https://aka\.ms/\S+ to troubleshoot|attempted credentials:$)"
)
MAX_CREDENTIAL_MESSAGE = 800


def _credential_failure(exc: BaseException) -> str:
    """A credential failure with its cause: DefaultAzureCredential's first line ("failed to retrieve a token") says
    nothing; the lines after it say which credential failed and why (an AADSTS code, a certificate not trusted, no
    federated token file). Kept on one line, scrubbed, bounded."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not _BOILERPLATE.match(line)]
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and str(cause) and str(cause).splitlines()[0] not in " ".join(kept):
        kept.append(f"caused by {type(cause).__name__}: {str(cause).splitlines()[0]}")
    text = redact(f"{type(exc).__name__}: " + "; ".join(kept))
    return text if len(text) <= MAX_CREDENTIAL_MESSAGE else text[: MAX_CREDENTIAL_MESSAGE - 3] + "..."


def describe(exc: BaseException) -> str:
    """A short, secret-free description of an Azure failure for logs and the landing page."""
    if isinstance(exc, HttpResponseError):
        code = getattr(getattr(exc, "error", None), "code", None)
        status = exc.status_code
        # Credential failures, bodies cut off mid-way and answers that are not JSON are HttpResponseErrors too,
        # with no status or a 200: "HTTP None" would hide what broke, so they fall through to their type.
        if code or (status is not None and status >= 400):
            return f"HTTP {status}" + (f" {code}" if code else "")
    if isinstance(exc, ClientAuthenticationError | CredentialSetupError):
        return _credential_failure(exc)
    if isinstance(exc, TimeoutError):
        return "deadline exceeded"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message[:300]}"
