from __future__ import annotations

import typer

from callcenter.commands.common import make_core
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger

app = typer.Typer(help="第三方存管 · custody ledger and reconciliation", no_args_is_help=True)


@app.command("reconcile")
def reconcile_cmd() -> None:
    """Compare our journal with the depository bank's books; settle transfers that died half-way."""
    core = make_core()
    report = core.transfers.reconcile()
    for ref in report.completed:
        typer.echo(f"completed {ref} (the bank had applied it)")
    for ref in report.voided:
        typer.echo(f"voided    {ref} (the bank never applied it; money returned)")
    for line in report.unresolved:
        typer.echo(f"DIFFERENCE {line}")
    typer.echo(f"{report.differences} differences, {len(report.unresolved)} needing a person")
    raise typer.Exit(1 if report.unresolved else 0)


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
