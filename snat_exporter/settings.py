"""Typed, documented settings: the machinery every config section is declared with.

A section is a frozen dataclass whose fields are declared with :func:`setting`. The same declaration gives the
default, the parser (so a YAML value, an environment variable and a flag all go through one path), the
documentation table in ``docs/configuration.md``, and the ``SNAT_EXPORTER_*`` environment variable name.
Errors name the field by its dotted path, because "exits 2 with a message that names the field" is a promise.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

ENV_PREFIX = "SNAT_EXPORTER_"


class ConfigError(Exception):
    """One or more invalid settings; ``problems`` holds (dotted path, message) pairs, in file order."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in self.problems))


Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class SettingInfo:
    doc: str
    parse: Parser | None
    env: bool
    example: str | None


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    parse: Parser | None = None,
    default_factory: Callable[[], Any] | None = None,
    env: bool = True,
    example: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Declare a config field. ``parse`` turns a raw YAML/env value into the typed value or raises ValueError.
    ``metadata``: more for the field's metadata (the collector table marks its sections with it)."""
    meta = {**(metadata or {}), "setting": SettingInfo(doc=doc, parse=parse, env=env, example=example)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------------- parsers

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'60s', '5m', '1h', '250ms' or a plain number of seconds -> seconds (float, > 0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 60s or 5m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"expected a duration like 60s or 5m, got {value!r}")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


N = TypeVar("N", int, float)


def _within(number: N, minimum: float | None, maximum: float | None) -> N:
    if minimum is not None and number < minimum:
        raise ValueError(f"must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"must be at most {maximum}, got {number}")
    return number


def parse_int(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
        return _within(number, minimum, maximum)

    return parse


def parse_number(minimum: float | None = None, maximum: float | None = None) -> Parser:
    """A plain number (an int or a float, not a string or a bool) within bounds: for data files whose numbers are
    quantities, not durations."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        number = float(value)
        return _within(number, minimum, maximum)

    return parse


def parse_str(value: Any) -> str:
    if isinstance(value, dict | list) or value is None:
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def parse_choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        text = parse_str(value)
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def parse_listen(value: Any) -> tuple[str, int]:
    """'HOST:PORT', '[v6]:PORT' or ':PORT' -> (host, port)."""
    text = parse_str(value).strip()
    m = re.match(r"^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$", text)
    if not m:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = m.group(1) or m.group(2) or "0.0.0.0"
    port = int(m.group(3))
    if port > 65535:  # 0 asks the kernel for a free port (tests, the demo)
        raise ValueError(f"port must be 0-65535, got {port}")
    return host, port


def parse_string_list(item: Parser = parse_str) -> Parser:
    def parse(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            # Environment variables and flags carry lists comma-separated.
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except ValueError as e:
                raise ValueError(f"item {i}: {e}") from None
        return tuple(out)

    return parse


def parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(parse_str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(f"expected a CIDR like 10.0.0.0/8, got {value!r}") from None


_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_uuid(value: Any) -> str:
    text = parse_str(value).strip()
    if not _UUID_RE.match(text):
        raise ValueError(f"expected a GUID like 00000000-0000-0000-0000-000000000000, got {text!r}")
    return text.lower()


def parse_url(value: Any) -> str:
    text = parse_str(value).strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", text):
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text


# ------------------------------------------------------------------------------------------------ the loader

T = TypeVar("T")


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _resolve_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default_parser(tp: Any) -> Parser:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _default_parser(args[0])
        return lambda v: None if v is None else inner(v)
    if tp is bool:
        return parse_bool
    if tp is int:
        return parse_int()
    if tp is float:
        return parse_duration
    if tp is str:
        return parse_str
    raise TypeError(f"no default parser for {tp!r}; give the setting a parse=")


def unknown_key(key: str, known: set[str]) -> str:
    """The message for a key no setting has: the likeliest typo fix, else every key the section knows."""
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown key; did you mean {close[0]}?" if close else f"unknown key (known: {', '.join(sorted(known))})"


def build_section(cls: type[T], raw: Any, path: str, problems: list[tuple[str, str]]) -> T:
    """Build ``cls`` from a mapping, appending every problem (unknown keys, bad values) to ``problems``."""
    hints = _resolve_types(cls)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append((path or "(top level)", f"expected a mapping, got {type(raw).__name__}"))
        raw = {}
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            problems.append((where, unknown_key(str(key), known)))
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        where = f"{path}.{f.name}" if path else f.name
        tp = hints[f.name]
        if _is_section(tp):
            values[f.name] = build_section(tp, raw.get(f.name), where, problems)
            continue
        if f.name not in raw:
            continue
        info: SettingInfo = f.metadata["setting"]
        parse = info.parse or _default_parser(tp)
        try:
            values[f.name] = parse(raw[f.name])
        except ValueError as e:
            problems.append((where, str(e)))
    # Every setting has a default, so construction cannot fail on a missing field.
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        for sub, msg in validate():
            problems.append((f"{path}.{sub}" if path else sub, msg))
    return obj


def iter_settings(cls: type, path: str = "") -> typing.Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """Every leaf setting as (dotted path, field, type), depth first, in declaration order."""
    hints = _resolve_types(cls)
    for f in fields(cls):
        where = f"{path}.{f.name}" if path else f.name
        tp = hints[f.name]
        if _is_section(tp):
            yield from iter_settings(tp, where)
        else:
            yield where, f, tp


def env_name(path: str) -> str:
    return ENV_PREFIX + path.upper().replace(".", "_")


def apply_overrides(raw: dict[str, Any], cls: type, overrides: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Write dotted-path overrides into the raw mapping; returns problems for paths that name no setting."""
    known = {p for p, _, _ in iter_settings(cls)}
    problems = []
    for path, value in overrides.items():
        if path not in known:
            close = difflib.get_close_matches(path, known, n=1)
            problems.append((path, f"unknown setting; did you mean {close[0]}?" if close else "unknown setting"))
            continue
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = {}
                node[p] = child
            node = child
        node[leaf] = value
    return problems


def env_overrides(cls: type, environ: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for path, f, _ in iter_settings(cls):
        if not f.metadata["setting"].env:
            continue
        name = env_name(path)
        if name in environ:
            out[path] = environ[name]
    return out


def default_text(f: dataclasses.Field[Any]) -> str:
    info: SettingInfo = f.metadata["setting"]
    if info.example is not None:
        return info.example
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and info.parse in (None, parse_duration):
        return format_duration(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int) and f.name == "listen":
        return f"{value[0]}:{value[1]}"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]" if value else "[]"
    return str(value)
