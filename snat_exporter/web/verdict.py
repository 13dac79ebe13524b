"""What an authentication check answers, and how each answer is sent and counted."""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    """The value is the ``outcome`` label of ``snat_exporter_http_auth_total``."""

    ALLOWED = "allowed"
    UNAUTHENTICATED = "unauthenticated"  # no credentials, or credentials that prove nobody: 401
    FORBIDDEN = "forbidden"  # a known identity without the permission: 403
    UNAVAILABLE = "unavailable"  # the check itself could not be made (API server unreachable): 503

    @property
    def status(self) -> int:
        return {"allowed": 200, "unauthenticated": 401, "forbidden": 403, "unavailable": 503}[self.value]
