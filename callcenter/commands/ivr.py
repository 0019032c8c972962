"""``callcenter ivr``: check flows and try them on the text test phone."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from callcenter.commands.common import Lang
from callcenter.services.ivr.backend import IvrBackend, demo_backend
from callcenter.services.ivr.flow import check_flow, flow_path, load_flow, FlowError
from callcenter.settings import Settings, load_settings

app = typer.Typer(help="Hotline IVR flows: check them, try them with the text test phone.", no_args_is_help=True)


def _backend_factory(settings: Settings) -> IvrBackend:
    """The backend the CLI (text phone, FastAGI server) uses: the real store on the configured database.
    Set CALLCENTER_IVR_FAKE=1 for the in-memory demo client (fund account 1234567890123456, PIN 123456)."""
    import os

    if os.environ.get("CALLCENTER_IVR_FAKE") == "1":
        return demo_backend()
    from callcenter.bootstrap import bootstrap

    return bootstrap(settings).ivr


def limits_from(settings: Settings) -> dict[str, int]:
    return {"pin_failures": settings.ivr_pin_attempts_per_call}


@app.command("check")
def check(file: Optional[Path] = typer.Argument(
        None, help="flow file or name; default: every flow in settings ivr_flows_dir (the shipped ivr_flows/)")) -> None:
    """Validate flow files; print each problem as FILE:LINE: MESSAGE."""
    folder = load_settings().flows_path
    files = [flow_path(file, folder)] if file else sorted(folder.glob("*.yaml"))
    bad = 0
    for path in files:
        problems = check_flow(path)
        for problem in problems:
            typer.echo(str(problem))
        if problems:
            bad += 1
        else:
            typer.echo(f"{path}: ok")
    if bad:
        raise typer.Exit(1)


@app.command("call")
def call(
    flow: str = typer.Argument("hotline", help="flow name (ivr_flows/<name>.yaml) or file"),
    caller: str = typer.Option("", "--caller", help="caller number (shown to agents, never proof of identity)"),
    keys: str = typer.Option("", "--keys", help="keys the caller presses; w = wait (time-out)"),
    lang: Lang = typer.Option("zh-CN", "--lang", help="the caller's language · 来电语言"),
) -> None:
    """Run a flow on the text test phone and print what the caller hears, line by line."""
    from callcenter.adapters.ivr.textphone import TextPhone

    settings = load_settings()
    try:
        loaded = load_flow(flow_path(flow, settings.flows_path))
    except FlowError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    phone = TextPhone(loaded, _backend_factory(settings), caller=caller, lang=lang, limits=limits_from(settings),
                      echo=typer.echo)
    result = phone.run(keys)
    typer.echo(f"[end] {result.end_reason}")
