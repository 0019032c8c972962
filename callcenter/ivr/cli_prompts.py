"""``callcenter prompts``: render the IVR prompt catalogue to WAV files for Asterisk."""

from __future__ import annotations

from pathlib import Path

import typer

from callcenter.ivr import prompts

app = typer.Typer(help="IVR prompts (espeak-ng + sox, 8 kHz mono WAV).", no_args_is_help=True)


@app.command("build")
def build(
    out: Path = typer.Option(prompts.DEFAULT_DIR, "--out", help="output folder (one sub-folder per language)"),
    lang: list[str] = typer.Option(list(prompts.LANGS), "--lang"),
) -> None:
    """Render every prompt (and every piece of spoken numbers/amounts) that changed."""
    try:
        report = prompts.build(out, tuple(lang))
    except prompts.PromptToolsMissing as exc:
        typer.echo(f"callcenter prompts: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"built {len(report.built)} prompt file(s), {report.unchanged} unchanged, in {out}")
