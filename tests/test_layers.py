"""The import contracts (.importlinter, run by `make lint`) name every module of the package they must hold."""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import snat_exporter

CONTRACTS = Path(__file__).resolve().parent.parent / ".importlinter"
# The commands that may start the simulator, and the simulator itself.
SIMULATOR_USERS = {"cli", "demo", "simulator", "__main__"}


def _modules(section: str, key: str) -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS)
    return {line.strip() for line in parser[section][key].splitlines() if line.strip()}


def test_every_module_but_the_simulator_and_its_commands_is_forbidden_the_simulator() -> None:
    # A module missing from the list could import the simulator unnoticed: every new module must be added.
    names = {info.name for info in pkgutil.iter_modules(snat_exporter.__path__)} - SIMULATOR_USERS
    listed = _modules("importlinter:contract:simulator", "source_modules")
    assert {f"snat_exporter.{name}" for name in names} == listed
    assert _modules("importlinter:contract:simulator", "forbidden_modules") == {"snat_exporter.simulator"}
