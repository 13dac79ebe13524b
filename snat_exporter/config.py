"""The exporter's configuration: one immutable object, built and validated once at start-up.

Precedence: command-line flags over ``SNAT_EXPORTER_*`` environment variables over the YAML file over defaults.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from snat_exporter.collectors import CollectorRow, collector_section, collector_table
from snat_exporter.collectors.azure.config import AzureConfig
from snat_exporter.collectors.base import CollectorSection
from snat_exporter.collectors.conntrack.config import ConntrackConfig
from snat_exporter.collectors.kube.config import KubernetesConfig
from snat_exporter.settings import (
    ConfigError,
    apply_overrides,
    build_section,
    env_name,
    env_overrides,
    parse_choice,
    parse_listen,
    setting,
)
from snat_exporter.web.settings import AUTH_CHOICES, HttpConfig

DEFAULT_PORT = 9874


@dataclass(frozen=True)
class Config:
    listen: tuple[str, int] = setting(
        ("0.0.0.0", DEFAULT_PORT), "Address of the HTTP server (/metrics, /healthz, /readyz, /).", parse=parse_listen
    )
    log_level: str = setting(
        "info", "`debug`, `info`, `warning` or `error`.", parse=parse_choice("debug", "info", "warning", "error")
    )
    web_config_file: str | None = setting(
        None,
        "Prometheus exporter-toolkit web config (TLS, basic auth, headers) for the HTTP server; certificate files are "
        "re-read when they change.",
    )
    auth: str = setting(
        "none",
        "`kubernetes`: a request (but /healthz and /readyz) must carry a bearer token that a TokenReview accepts and "
        "whose user a SubjectAccessReview allows to `get` the non-resource URL (/metrics), as the kubelet does; the "
        "API server is reached as the `kubernetes` section says. `none`: no such check.",
        parse=parse_choice(*AUTH_CHOICES),
    )
    http: HttpConfig = setting(default_factory=HttpConfig, doc="HTTP server limits.")
    # The collector table: one row per collector (its section, package and role); see snat_exporter/collectors.
    azure: AzureConfig = collector_section(AzureConfig, "azure", "Azure Monitor collector.")
    kubernetes: KubernetesConfig = collector_section(
        KubernetesConfig, "kube", "Kubernetes identity.", provides_identity=True
    )
    conntrack: ConntrackConfig = collector_section(ConntrackConfig, "conntrack", "Node conntrack collector.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.web_config_file is None:
            return
        if not Path(self.web_config_file).is_file():
            yield "web_config_file", f"no such file: {self.web_config_file}"
            return
        from snat_exporter.web.config import load_web_config

        try:
            load_web_config(self.web_config_file)
        except ConfigError as e:
            yield from e.problems

    @classmethod
    def collectors(cls) -> tuple[CollectorRow, ...]:
        return collector_table(cls)

    def section(self, row: CollectorRow) -> CollectorSection:
        section: CollectorSection = getattr(self, row.name)
        return section

    @property
    def enabled_collectors(self) -> list[str]:
        return [row.name for row in self.collectors() if self.section(row).enabled]


# A config file is a few kilobytes; more is not one (and reading it whole would hold it in memory).
MAX_CONFIG_BYTES = 1024 * 1024


def _is_dev_null(info: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == null.st_rdev


def read_config_text(path: str | os.PathLike[str], field: str = "(file)") -> str:
    """The text of a config file, refused unless it is a regular file: reading a FIFO blocks until a writer comes
    (forever at start-up), /dev/zero never ends. Opened without blocking and checked on the open descriptor, so
    nothing can be swapped in between."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ConfigError([(field, f"cannot read {path}: {e.strerror}")]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) and not _is_dev_null(info):  # /dev/null: an empty config, by convention
            mode = info.st_mode
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "a device or socket"
            raise ConfigError([(field, f"{path} is {kind}, not a regular file")])
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([(field, f"{path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config file")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([(field, f"{path} is not UTF-8 text (byte {e.start})")]) from None


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    text = read_config_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([("(file)", f"{path} is not valid YAML{where}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([("(top level)", f"expected a mapping, got {type(data).__name__}")])
    return data


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """File, then environment, then ``overrides`` (dotted paths from flags). Raises ConfigError naming each field."""
    raw: dict[str, Any] = read_yaml(path) if path is not None else {}
    problems: list[tuple[str, str]] = []
    from_env = env_overrides(Config, os.environ if environ is None else environ)
    problems += apply_overrides(raw, Config, from_env)
    problems += apply_overrides(raw, Config, overrides or {})
    config = build_section(Config, raw, "", problems)
    if problems:
        # A bad value that came from the environment is fixed there: name the variable, not only the setting.
        env_paths = set(from_env) - set(overrides or {})
        raise ConfigError([(f"{env_name(p)} ({p})" if p in env_paths else p, m) for p, m in problems])
    return config
