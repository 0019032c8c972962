"""``callcenter leads import FILE --campaign ID`` and ``leads segment``: lead lists."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.commands.common import LANG, Lang, Segment, make_core as _core, progress_bar, refused as _refused
from callcenter.i18n import t

app = typer.Typer(help="外呼名单 · lead lists", no_args_is_help=True, add_completion=False)

# --- leads --------------------------------------------------------------------------------------------


@app.command("import")
def import_cmd(path: Path = typer.Argument(..., exists=True, dir_okay=False),
               campaign: int = typer.Option(..., "--campaign", help="campaign id"), lang: Lang = LANG) -> None:
    """Import a CSV or XLSX lead list: every row or none; every problem is listed (the same check as the
    supervisor page's upload)."""
    from callcenter.services.dialer.leads import LeadFileError, import_leads

    core = _core()
    try:
        total = _data_rows(path)
        with progress_bar("leads", lang, total) as progress:
            report = import_leads(core, campaign, path, on_batch=lambda done: progress(done, max(total, done)))
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


def _data_rows(path: Path) -> int:
    """About how many rows the file holds (for the progress bar): the lines of a CSV, the rows of a sheet."""
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            from openpyxl import load_workbook

            book = load_workbook(path, read_only=True)
            return max((book.active.max_row or 1) - 1, 0) if book.active is not None else 0
        with path.open("rb") as fh:
            return max(sum(1 for _ in fh) - 1, 0)
    except Exception:  # noqa: BLE001 - only the bar's length; the import reports an unreadable file itself
        return 0


@app.command("segment")
def segment_cmd(
    segment: Segment = typer.Argument(..., help="the client segment · 客户群"),
    campaign: int = typer.Option(..., "--campaign", help="campaign id · 活动编号"),
    months: int = typer.Option(12, help="former: closed within N months"),
    days: int = typer.Option(180, help="dormant: no trade for N days"),
    code: str = typer.Option("", help="holders: security code"),
    within_days: int = typer.Option(7, help="birthdays: within N days"),
    today: str = typer.Option("", help="YYYY-MM-DD (default: today)"),
    lang: Lang = LANG,
) -> None:
    """按客户群生成名单 · add the clients of a segment to a campaign as leads."""
    from callcenter.services.dialer.segment_leads import add_segment_leads

    core = _core()
    try:
        try:
            day = date.fromisoformat(today) if today else core.clock().date()
        except ValueError:
            raise typer.BadParameter(t("dialer.cli.bad_day", lang), param_hint="--today") from None
        result = add_segment_leads(core, campaign, segment, day, months=months, days=days, code=code,
                                   within_days=within_days)
    except ValueError as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.segment_added", lang, segment=segment, created=result.created, merged=result.merged))
