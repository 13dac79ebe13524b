"""Command line: turns flags and the environment into a Config and starts the right thing; no other logic.

Exit codes: 0 fine, 1 a runtime failure (or, for diagnose, a finding at warning or above), 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any

from snat_exporter.collectors import start_order
from snat_exporter.config import Config, load_config
from snat_exporter.logs import setup_logging
from snat_exporter.settings import ConfigError, parse_listen
from snat_exporter.version import BUILD

EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_HELP = "log level (overrides `log_level`; logs are logfmt on stderr)"


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError([(item, "--set takes KEY=VALUE, e.g. --set azure.interval=30s")])
        out[key.strip()] = value
    if getattr(args, "listen", None):
        out["listen"] = args.listen
    if getattr(args, "log_level", None):
        out["log_level"] = args.log_level
    if getattr(args, "shard", None):
        out["azure.shard"] = args.shard
    return out


def _load(args: argparse.Namespace, path: str | None) -> Config:
    return load_config(path, overrides=_overrides(args))


def _print_config_errors(err: ConfigError) -> None:
    for path, message in err.problems:
        print(f"config error: {path}: {message}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    from snat_exporter.server import ListenError, serve

    config = _load(args, args.config)
    if not config.enabled_collectors:
        switches = ", ".join(f"{row.name}.enabled" for row in start_order(Config.collectors()))
        print(
            f"error: no collector is enabled: set {switches} to true "
            "in the config file (see docs/configuration.md) or with --set",
            file=sys.stderr,
        )
        return EXIT_USAGE
    setup_logging(config.log_level)
    try:
        asyncio.run(serve(config))
    except ListenError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args, args.path)
    enabled = ", ".join(config.enabled_collectors) or "none"
    print(f"{args.path}: ok (collectors enabled: {enabled})")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from snat_exporter.simulator.cli import run_simulator

    setup_logging(args.log_level or "info")
    host, port = parse_listen(args.listen)
    return run_simulator(args.scenario, host, port)


def cmd_demo(args: argparse.Namespace) -> int:
    from snat_exporter.demo import run_demo
    from snat_exporter.server import ListenError

    setup_logging(args.log_level or "info")
    host, port = parse_listen(args.listen)
    try:
        return run_demo(args.scenario, host, port)
    except ListenError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


def cmd_diagnose(args: argparse.Namespace) -> int:
    from snat_exporter.diagnose.run import DiagnoseError, diagnose
    from snat_exporter.settings import parse_duration, parse_url

    setup_logging(args.log_level or "warning")
    try:
        since = parse_duration(args.since)
    except ValueError as e:
        raise ConfigError([("--since", str(e))]) from None
    prometheus = None
    if args.prometheus:
        try:
            prometheus = parse_url(args.prometheus)
        except ValueError as e:
            raise ConfigError([("--prometheus", str(e))]) from None
    if args.cluster and not prometheus:
        raise ConfigError([("--cluster", "only with --prometheus (the config's azure.cluster names the cluster)")])
    config = _load(args, args.config)
    try:
        result = diagnose(config, prometheus=prometheus, since=since, output=args.output, cluster=args.cluster)
    except DiagnoseError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(result.text)
    return result.exit_code


def cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from snat_exporter.generate.command import run_generate

    return run_generate(args.config, Path(args.out), check=args.check)


def cmd_dashboards_add_row(args: argparse.Namespace) -> int:
    from pathlib import Path

    from snat_exporter.generate.command import run_add_row

    return run_add_row(args.config, Path(args.into), Path(args.out) if args.out else None)


class _PrintVersion(argparse.Action):
    """argparse's own version action wraps the line at the terminal width; scripts parse it whole."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(BUILD.line())
        parser.exit()


def _builtin_scenarios() -> str:
    # The scenario files themselves, listed without importing the simulator (seconds of imports on every start).
    folder = resources.files("snat_exporter") / "simulator" / "scenarios"
    return ", ".join(sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")))


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help opens with the same sentence the command list shows."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary[:1].upper() + summary[1:] + "."
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snat-exporter",
        description="Prometheus exporter for SNAT port usage on Azure Kubernetes Service.",
    )
    parser.add_argument("--version", action=_PrintVersion, help="print version, revision and Python version, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="each has its own --help")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override any setting by its dotted path, e.g. --set azure.interval=30s",
        )
        p.add_argument("--log-level", choices=LOG_LEVELS, help=LOG_LEVEL_HELP)

    p = _command(sub, "serve", "run the exporter: collect in the background, serve /metrics")
    p.add_argument("--config", help="YAML config file (see docs/configuration.md)")
    p.add_argument("--listen", help="HOST:PORT of the HTTP server (overrides `listen`)")
    p.add_argument("--shard", metavar="I/N", help="query the Azure metrics of shard I of N (overrides `azure.shard`)")
    common(p)
    p.set_defaults(func=cmd_serve)

    p = _command(sub, "check-config", "validate a config file; exit 0, or 2 naming every bad field")
    p.add_argument("path", help="the YAML config file to check, with the environment and --set applied")
    common(p)
    p.set_defaults(func=cmd_check_config)

    scenarios = _builtin_scenarios()
    p = _command(sub, "simulate", "run the Azure Resource Manager and Azure Monitor simulator alone")
    p.add_argument(
        "--scenario", default="steady", help=f"built-in scenario ({scenarios}) or a scenario YAML path (default steady)"
    )
    p.add_argument("--listen", default="127.0.0.1:9875", help="HOST:PORT (default 127.0.0.1:9875)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
    p.set_defaults(func=cmd_simulate)

    p = _command(
        sub, "demo", "the simulator, a fake Kubernetes API and the exporter together on loopback, until Ctrl-C"
    )
    p.add_argument(
        "--scenario",
        default="exhaustion",
        help=f"built-in scenario ({scenarios}) or a scenario YAML path (default exhaustion)",
    )
    p.add_argument("--listen", default="127.0.0.1:9874", help="HOST:PORT of the exporter (default 127.0.0.1:9874)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
    p.set_defaults(func=cmd_demo)

    p = _command(
        sub,
        "diagnose",
        "Microsoft's outbound-connectivity checklist in one report; exit 0 healthy, 1 warning or worse, 2 error",
    )
    p.add_argument("--config", help="exporter config: its azure section says which cluster to read")
    p.add_argument("--prometheus", metavar="URL", help="read the exporter's series from this Prometheus instead")
    p.add_argument(
        "--cluster", metavar="NAME", help="with --prometheus: the AKS cluster to diagnose, when it has several"
    )
    p.add_argument("--since", default="1h", help="how far back to look for peaks and failures (default 1h)")
    p.add_argument("--output", choices=("text", "json"), default="text", help="report format (default text)")
    common(p)
    p.set_defaults(func=cmd_diagnose)

    p = _command(
        sub,
        "generate",
        "write the alert rules, PrometheusRules, Azure rule groups and dashboards for your monitoring stack",
    )
    p.add_argument("--config", help="mixin config: cluster label, job selectors, thresholds (docs/mixin.md)")
    p.add_argument("--out", default=".", help="directory to write the generated tree into (default: .)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each file that differs")
    p.set_defaults(func=cmd_generate)

    p = _command(sub, "dashboards", "work with Grafana dashboards you already have")
    dashboards = p.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND", help="what to do")
    p = _command(
        dashboards,
        "add-row",
        "put the Network: SNAT Activity row into an exported dashboard (replaces it on a second run)",
    )
    p.add_argument("--into", required=True, metavar="FILE", help="the dashboard JSON, e.g. cluster-overview.json")
    p.add_argument("--out", metavar="FILE", help="write here instead of changing --into in place")
    p.add_argument("--config", help="mixin config: cluster label, job selectors, thresholds (docs/mixin.md)")
    p.set_defaults(func=cmd_dashboards_add_row)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as err:
        _print_config_errors(err)
        return EXIT_USAGE
    except ValueError as err:  # a bad flag value (e.g. --listen) that argparse could not check
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
