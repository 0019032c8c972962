"""The command line: one module a command group (``callcenter <group> ...``), registered in ``callcenter.cli``."""

from __future__ import annotations

import sys

import typer

from callcenter.settings import SettingsError


def run_command(command: typer.Typer) -> None:
    """Run a Typer app as a command: a settings error is one line on stderr and exit status 2."""
    try:
        command()
    except SettingsError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        sys.exit(2)
