"""Which text may become a label value: checked where outside data enters, by every collector.

A label value comes from a source we do not control (an Azure dimension, a Kubernetes object name, an error code).
JSON can carry a lone surrogate (``"\\ud800"``), which no UTF-8 encoder accepts: one such value made rendering fail
and took a whole collector's block off /metrics while its health said all was well. Control characters are valid
in the exposition formats but no real source sends them in an IP, a protocol, a state or a Kubernetes name, and
they break log lines and dashboards. So a value holding either is refused where it enters: the one series (or
object) is dropped and counted, never the block. Checking is one regex search per value, on the collector's own
thread, not at scrape time.
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and every surrogate code point (a lone one cannot be encoded as UTF-8).
_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A value longer than this is not a name, an IP or a code: no series is worth a label of kilobytes.
MAX_LENGTH = 1024


def is_label_text(value: str) -> bool:
    """True when ``value`` may be exported as a label value as it is."""
    return len(value) <= MAX_LENGTH and _REFUSED.search(value) is None


_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def code_label(value: object, other: str = "other") -> str:
    """A short identifier from outside (an Azure ``errorCode``, a Kubernetes status reason) as a label value of a
    self-metric: kept when it looks like a code, else ``other``, so that neither garbage nor an endless variety of
    strings reaches a counter's labels (each new value would be a new series for good)."""
    text = str(value)
    return text if _CODE.fullmatch(text) else other
