"""``callcenter prompts``: render the IVR prompt catalogue to WAV files for Asterisk."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import sys

import typer

from callcenter.adapters.ivr import prompts
from callcenter.commands import cli_lang
from callcenter.commands.common import progress_bar

app = typer.Typer(help="IVR prompts (espeak-ng + sox, 8 kHz mono WAV).", no_args_is_help=True)


@app.command("build")
def build(
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (one sub-folder per language); "
                                       "default: settings prompts_dir (var/prompts)"),
    lang: list[str] = typer.Option(list(prompts.LANGS), "--lang",
                                   help="languages to build, repeat for several: " + " | ".join(prompts.LANGS)),
) -> None:
    """Render every prompt (and every piece of spoken numbers/amounts) that changed, and the dialler's
    safe-harbour and leave-message prompts (naming company_name and company_hotline) at the top of the tree."""
    from callcenter.settings import load_settings

    wrong = [x for x in lang if x not in prompts.LANGS]
    if wrong:
        raise typer.BadParameter(" | ".join(prompts.LANGS), param_hint="--lang")
    settings = load_settings()
    out = out or settings.prompts_path
    try:
        with progress_bar("prompts", cli_lang(sys.argv[1:])) as progress:
            report = prompts.build(out, tuple(lang), company=prompts.Company.from_settings(settings), progress=progress)
    except prompts.PromptToolsMissing as exc:
        typer.echo(f"callcenter prompts: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"built {len(report.built)} prompt file(s), {report.unchanged} unchanged, in {out}")
