from __future__ import annotations

from datetime import date, timedelta

import typer

from callcenter.commands.common import LANG, Lang, make_core, progress_bar
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger

app = typer.Typer(help="第三方存管 · custody ledger and reconciliation", no_args_is_help=True)


@app.command("reconcile")
def reconcile_cmd(
    day: list[str] = typer.Option([], "--day", help="business day whose bank statement is compared, YYYY-MM-DD; "
                                  "repeat for several (default: today)"),
    grace_seconds: int = typer.Option(-1, help="leave pending transfers younger than this alone "
                                      "(default: the reconcile_grace_seconds setting)"),
    lang: Lang = LANG,
) -> None:
    """Compare our journal with the depository bank's statement; settle transfers that died half-way."""
    try:
        days: list[date | None] = [date.fromisoformat(d) for d in day] or [None]
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD", param_hint="--day") from None
    grace = timedelta(seconds=grace_seconds) if grace_seconds >= 0 else None
    core = make_core()
    try:
        with progress_bar("reconcile", lang) as progress:
            reports = [core.transfers.reconcile(day=d, grace=grace, progress=progress) for d in days]
    finally:
        core.close()
    for report in reports:
        typer.echo(f"business day {report.day}, bank at {core.settings.bank_url}")
        for ref in report.in_flight:
            typer.echo(f"in flight {ref} (pending for less than the grace period; left alone)")
        for ref in report.completed:
            typer.echo(f"completed {ref} (the bank had applied it)")
        for ref in report.voided:
            typer.echo(f"voided    {ref} (the bank never applied it; money returned)")
        for line in report.unresolved:
            typer.echo(f"DIFFERENCE {line}")
        typer.echo(f"{report.differences} differences, {len(report.unresolved)} needing a person")
    raise typer.Exit(1 if any(r.unresolved for r in reports) else 0)


@app.command("check")
def check_cmd() -> None:
    """Prove the journal sound: entries sum to zero, cached balances equal their postings, none negative."""
    core = make_core()
    with transaction(core.sessions) as s:
        result = check_ledger(s)
    for problem in result.problems:
        typer.echo(f"PROBLEM {problem}")
    typer.echo(f"{result.books} books, {result.entries} entries, client money {result.client_money_fen / 100:,.2f} 元: "
               + ("ok" if result.ok else f"{len(result.problems)} problems"))
    raise typer.Exit(0 if result.ok else 1)
