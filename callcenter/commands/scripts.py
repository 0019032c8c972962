"""``callcenter scripts …``: check talk scripts and preview them with the sample context."""

from __future__ import annotations

from pathlib import Path

import typer

from callcenter.i18n import t

app = typer.Typer(help="话术脚本 · talk scripts", no_args_is_help=True, add_completion=False)



@app.command("check")
def check_cmd(
    paths: list[Path] = typer.Argument(
        None, help="script files or directories (default: settings scripts_dir, the shipped scripts_templates/)"),
    lang: str = typer.Option("zh-CN", "--lang", help="message language: zh-CN or en"),
) -> None:
    """Report forbidden wording, undefined variables, template errors and graph problems; exit 1 on any."""
    from callcenter.services.scripts.check import check_paths, iter_script_files

    from callcenter.settings import load_settings

    targets = list(paths) if paths else [load_settings().scripts_path]
    files = iter_script_files(targets)
    if not files:
        typer.echo(t("scripts.cli.no_files", lang, paths=", ".join(str(p) for p in targets)), err=True)
        raise typer.Exit(1)
    _scripts, problems = check_paths(targets)
    for problem in problems:
        typer.echo(problem.format(lang))
    typer.echo(t("scripts.cli.checked", lang, files=len(files), problems=len(problems)))
    if problems:
        raise typer.Exit(1)
    typer.echo(t("scripts.cli.ok", lang))


@app.command("preview")
def preview_cmd(
    path: Path = typer.Argument(..., help="a script file"),
    lang: str = typer.Option("zh-CN", "--lang"),
    step: str = typer.Option(None, "--step", help="one step id (default: all steps)"),
) -> None:
    """Print the script's steps rendered with ScriptContext.sample() as plain text."""
    from callcenter.domain.scripts.context import ScriptContext
    from callcenter.services.scripts.render import load_script, render_step

    script = load_script(path, check=False)
    ctx = ScriptContext.sample()
    for step_id in [step] if step else list(script.steps):
        shown = render_step(script, step_id, ctx, lang, html=False)
        typer.echo(f"== {step_id}" + (f" · {shown.title}" if shown.title else ""))
        typer.echo(shown.text)
        if shown.hint:
            typer.echo(f"  [{t('scripts.cli.hint', lang)}] {shown.hint}")
        for f in shown.capture:
            choices = f" ({' / '.join(c.label for c in f.choices)})" if f.choices else ""
            typer.echo(f"  [{t('scripts.cli.capture', lang)}] {f.label}: {f.type}{'*' if f.required else ''}{choices}")
        for a in shown.answers:
            typer.echo(f"  -> [{a.key}] {a.label} => {a.next}")
        if shown.outcome:
            typer.echo(f"  [{t('scripts.cli.outcome', lang)}] {shown.outcome}")
        typer.echo("")
