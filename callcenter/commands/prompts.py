"""``callcenter prompts``: render the IVR prompt catalogue to WAV files for Asterisk."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from callcenter.adapters.ivr import prompts

app = typer.Typer(help="IVR prompts (espeak-ng + sox, 8 kHz mono WAV).", no_args_is_help=True)


@app.command("build")
def build(
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (one sub-folder per language); "
                                       "default: settings prompts_dir (var/prompts)"),
    lang: list[str] = typer.Option(list(prompts.LANGS), "--lang"),
) -> None:
    """Render every prompt (and every piece of spoken numbers/amounts) that changed, and the dialler's
    safe-harbour and leave-message prompts (naming company_name and company_hotline) at the top of the tree."""
    from callcenter.settings import load_settings

    settings = load_settings()
    out = out or settings.prompts_path
    try:
        report = prompts.build(out, tuple(lang), company=prompts.Company.from_settings(settings))
    except prompts.PromptToolsMissing as exc:
        typer.echo(f"callcenter prompts: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"built {len(report.built)} prompt file(s), {report.unchanged} unchanged, in {out}")
