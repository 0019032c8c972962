"""``callcenter leads import FILE --campaign ID`` and ``leads segment``: lead lists."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.commands.common import LANG, make_core as _core, refused as _refused
from callcenter.i18n import t

app = typer.Typer(help="外呼名单 · lead lists", no_args_is_help=True, add_completion=False)

# --- leads --------------------------------------------------------------------------------------------


@app.command("import")
def import_cmd(path: Path = typer.Argument(..., exists=True, dir_okay=False),
               campaign: int = typer.Option(..., "--campaign", help="campaign id"), lang: str = LANG) -> None:
    """Import a CSV or XLSX lead list: every row or none; every problem is listed (the same check as the
    supervisor page's upload)."""
    from callcenter.services.dialer.leads import LeadFileError, import_leads

    core = _core()
    try:
        report = import_leads(core, campaign, path)
    except LeadFileError as exc:
        typer.echo(exc.sentence(lang), err=True)
        raise typer.Exit(1) from None
    finally:
        core.close()
    if not report.imported:
        for sentence in report.sentences(lang):
            typer.echo(sentence, err=True)
        typer.echo(report.summary(lang), err=True)
        raise typer.Exit(1)
    typer.echo(report.summary(lang))


@app.command("segment")
def segment_cmd(
    segment: str = typer.Argument(..., help="former | dormant | holders | birthdays"),
    campaign: int = typer.Option(..., "--campaign"),
    months: int = typer.Option(12, help="former: closed within N months"),
    days: int = typer.Option(180, help="dormant: no trade for N days"),
    code: str = typer.Option("", help="holders: security code"),
    within_days: int = typer.Option(7, help="birthdays: within N days"),
    today: str = typer.Option("", help="YYYY-MM-DD (default: today)"),
    lang: str = LANG,
) -> None:
    from callcenter.services.dialer.segment_leads import add_segment_leads

    core = _core()
    try:
        day = date.fromisoformat(today) if today else core.clock().date()
        result = add_segment_leads(core, campaign, segment, day, months=months, days=days, code=code,
                                   within_days=within_days)
    except ValueError as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.segment_added", lang, segment=segment, created=result.created, merged=result.merged))
