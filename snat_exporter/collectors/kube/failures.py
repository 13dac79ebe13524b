"""What went wrong talking to the API server, as a bounded reason label and a message: an HTTP answer, a watch
ERROR event, a transport error. The reflector counts, logs and waits by these reasons."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException


class Gone(Exception):
    """410: the resourceVersion (or continue token) is older than the server's history. Relist."""


@dataclass(frozen=True)
class Failure:
    reason: str  # a bounded label value
    message: str
    status: int | None = None
    retry_after: float | None = None


def _status_message(exc: ApiException) -> str:
    """The message of the Status object the API server sends with an error, else the HTTP reason."""
    body = exc.body
    if body:
        try:
            status = json.loads(body)
            if isinstance(status, dict) and status.get("message"):
                return str(status["message"])
        except ValueError:
            pass
    return f"HTTP {exc.status} {exc.reason or ''}".strip()


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, Gone):
        return Failure("gone", str(exc) or "resource version expired", 410)
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = _status_message(exc)
        if status == 410:
            return Failure("gone", message, status)
        if status == 401:
            return Failure("auth", message, status)
        if status == 403:
            return Failure("forbidden", message, status)
        if status == 404:
            return Failure("not_found", message, status)
        if status == 429:
            retry_after = None
            try:
                retry_after = float((exc.headers or {}).get("Retry-After"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                pass
            return Failure("throttled", message, status, retry_after)
        if status >= 500:
            return Failure("http_5xx", message, status)
        if status == 0:
            return Failure("tls", str(exc.reason or "TLS error"))
        return Failure("http_4xx", message, status)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return classify(exc.reason)
    # NewConnectionError subclasses ConnectTimeoutError in urllib3: test it first, a refused connection is no timeout.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError):
        return Failure("unreachable", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.ConnectTimeoutError | TimeoutError):
        return Failure("timeout", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return Failure("dropped", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError | KeyError | TypeError | AttributeError):  # JSONDecodeError is a ValueError
        return Failure("malformed", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return Failure("unreachable", f"{type(exc).__name__}: {exc}")
    return Failure("internal", f"{type(exc).__name__}: {exc}")


# The HTTP code of each StatusReason (k8s.io/apimachinery/pkg/apis/meta/v1 types.go), for an ERROR event whose
# Status lacks its code: without one, the error passed for a TLS failure (status 0 is how the client reports those).
_REASON_CODES = {
    "Expired": 410,
    "Gone": 410,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "TooManyRequests": 429,
    "BadRequest": 400,
    "Invalid": 422,
    "Conflict": 409,
    "MethodNotAllowed": 405,
    "InternalError": 500,
    "ServiceUnavailable": 503,
    "Timeout": 504,
    "ServerTimeout": 500,
}


def error_event(status: Any) -> Exception:
    """The exception for a watch ERROR event carrying ``status`` (a Status object), classified like the same error
    answered as HTTP: its code, else the code of its reason; with neither the event is malformed."""
    if not isinstance(status, dict):
        return ValueError(f"watch ERROR event whose object is not a Status: {type(status).__name__}")
    reason = str(status.get("reason") or "")
    message = f"{reason}: {status.get('message', '')}"
    code = status.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
        code = _REASON_CODES.get(reason)
    if code is None:
        return ValueError(f"watch ERROR event without an HTTP code: {message}")
    if code == 410:
        return Gone(message)
    return ApiException(status=code, reason=message)
