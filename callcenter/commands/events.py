"""``callcenter events import``: corporate events."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from callcenter.commands.common import make_core as _core

app = typer.Typer(help="公司事件（配股、增发、权证、新股、分红）· corporate events", no_args_is_help=True)
events = app

@events.command("import")
def import_events(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """导入事件 CSV（逐行报告错误）· import a CSV of events; bad rows are listed and skipped."""
    from callcenter.services.care.events import import_events_csv

    core = _core()
    report = import_events_csv(core.sessions, file.read_text(encoding="utf-8-sig"), core.clock(),
                               source=f"csv:{file.name}")
    typer.echo(f"created={report.created} updated={report.updated} unchanged={report.unchanged} "
               f"errors={len(report.errors)}")
    for err in report.errors:
        typer.echo(f"  line {err.line}: {'; '.join(err.messages)}", err=True)
    core.close()
    if report.errors:
        raise typer.Exit(1)
