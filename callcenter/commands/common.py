"""Helpers shared by the command modules: settings and the wired App (built once per command), the choices an
option takes (listed by ``--help``, checked before the command runs), progress bars, tables."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import typer

from callcenter.bootstrap import App, bootstrap
from callcenter.i18n import t
from callcenter.logging_setup import configure_logging
from callcenter.ports.progress import Progress
from callcenter.settings import load_settings


def make_core(**overrides: object) -> App:
    configure_logging()
    return bootstrap(load_settings(**overrides))


# --- the choices of options (Literal types: Typer lists them in --help and refuses anything else) ----------
Lang = Literal["zh-CN", "en"]
CampaignKind = Literal["former_clients", "cold_leads", "dormant", "reminder", "callback"]
DialMode = Literal["preview", "progressive", "ratio", "predictive"]
CallingDays = Literal["trading", "working", "every"]
Segment = Literal["former", "dormant", "holders", "birthdays"]
Side = Literal["buy", "sell"]

LANG: Any = typer.Option("zh-CN", "--lang", help="message language · 输出语言")


def refused(exc: Exception, lang: str) -> typer.Exit:
    """A use case refused the command: its sentence (in ``lang``) on stderr, exit status 1."""
    sentence = getattr(exc, "sentence", None)
    typer.echo(t("dialer.cli.refused", lang, detail=sentence(lang) if callable(sentence) else str(exc)), err=True)
    return typer.Exit(1)


# --- progress bars and tables (rich) -------------------------------------------------------------------------
@contextmanager
def progress_bar(key: str, lang: str, total: int = 0) -> Iterator[Progress]:
    """A progress bar on stderr (stdout stays for the result) while a long job runs; yields the job's
    ``progress(done, total)``. Off when ``CALLCENTER_PROGRESS=0`` or stderr is not a terminal (logs, pipes);
    ``CALLCENTER_PROGRESS=1`` draws it anyway."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    wanted = os.environ.get("CALLCENTER_PROGRESS", "")
    console = Console(stderr=True, force_terminal=True if wanted == "1" else None)
    off = wanted == "0" or not console.is_terminal
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
             console=console, transient=True, disable=off) as bar:
        task = bar.add_task(t(f"common.cli.progress.{key}", lang), total=total or None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def local_time(when: datetime | None, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when else "—"


def print_table(lang: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    """A rich table on stdout: column headers ``common.cli.table.<name>`` in ``lang``, then a count line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(t(f"common.cli.table.{c}", lang), overflow="fold")
    for row in rows:
        table.add_row(*("—" if v is None or v == "" else str(v) for v in row))
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(t("common.cli.table.count", lang, n=len(rows)))
