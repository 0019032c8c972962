"""The ``callcenter`` command. Each area registers its own sub-commands here."""

from __future__ import annotations

import sys

import typer

from callcenter.settings import SettingsError

app = typer.Typer(
    help="证券呼叫中心 · brokerage call-centre engine",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each area keeps its commands in its own module: callcenter/<area>/cli.py exposing `app` (a Typer).
    # Add one line per area (name, module path).
    areas: list[tuple[str, str]] = [
        # --- registered areas (one line each) ---
        ("dialer", "callcenter.dialer.cli"),
        ("campaign", "callcenter.dialer.cli_campaign"),
        ("leads", "callcenter.dialer.cli_leads"),
        ("reminders", "callcenter.care.cli"),
        ("events", "callcenter.care.cli_events"),
        ("complaints", "callcenter.care.cli_complaints"),
        ("ivr", "callcenter.ivr.cli"),
        ("prompts", "callcenter.ivr.cli_prompts"),
        ("agi", "callcenter.ivr.cli_agi"),
        ("scripts", "callcenter.scripts.cli"),
        ("db", "callcenter.commands.db"),
        ("demo", "callcenter.commands.demo"),
        ("custody", "callcenter.commands.custody"),
        ("bench", "callcenter.commands.bench"),
        ("admin", "callcenter.commands.admin"),
        ("bank", "callcenter.bank.cli"),
    ]
    import importlib

    for name, module in areas:
        sub = importlib.import_module(module).app
        app.add_typer(sub, name=name)
    from callcenter.commands import serve

    app.command("run")(serve.run)
    app.command("serve")(serve.serve)


def main() -> None:
    _register()
    try:
        app()
    except SettingsError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
