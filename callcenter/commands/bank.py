"""``callcenter bank``: the simulated depository bank, a service of its own."""

from __future__ import annotations

import asyncio
from datetime import date

import typer

from callcenter.logging_setup import configure_logging
from callcenter.settings import load_settings

app = typer.Typer(help="模拟存管银行 · the simulated depository bank (its own process and database)",
                  no_args_is_help=True)


@app.command("serve")
def serve_cmd(parent_pid: int = typer.Option(0, hidden=True, help="stop when this process is gone")) -> None:
    """Serve the simulated bank at bank_url on its own database (bank_database_url), faults from bank_fault_*."""
    from callcenter.bank.server import serve_bank

    configure_logging()
    settings = load_settings()
    from sqlalchemy.engine import make_url

    books = make_url(settings.bank_database_url).render_as_string(hide_password=True)
    typer.echo(f"simulated bank: {settings.bank_url}  books: {books}")
    try:
        asyncio.run(serve_bank(settings, parent_pid=parent_pid or None))
    except KeyboardInterrupt:
        pass


@app.command("statement")
def statement_cmd(day: str = typer.Option("", help="business day YYYY-MM-DD (default: today)")) -> None:
    """Print the bank's statement of one business day, fetched over the protocol at bank_url."""
    from datetime import datetime, timezone

    from callcenter.adapters.bank_http import HttpBank
    from callcenter.domain.masking import mask_account

    settings = load_settings()
    when = date.fromisoformat(day) if day else datetime.now(timezone.utc).astimezone(settings.tz).date()
    from callcenter.ports.bank import BankUnavailable

    bank = HttpBank(settings.bank_url, timeout=settings.bank_timeout_seconds)
    try:
        entries = bank.statement(when)
    except BankUnavailable as exc:
        typer.echo(f"the bank at {settings.bank_url} did not answer: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        bank.close()
    for ref, (account_no, amount) in sorted(entries.items()):
        typer.echo(f"{ref}  {mask_account(account_no)}  {amount / 100:>14,.2f}")
    typer.echo(f"{when}: {len(entries)} transfers, net {sum(a for _, a in entries.values()) / 100:,.2f} 元")
