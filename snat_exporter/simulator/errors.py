"""The error answers of the simulated Azure APIs."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """An error answer in the ARM shape: ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)
