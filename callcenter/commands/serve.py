from __future__ import annotations

import asyncio

import typer

from callcenter.commands.common import make_core
from callcenter.commands.demo import print_demo_logins
from callcenter.demo.seed import open_demo_bank_accounts, seed
from callcenter.demo.seed_campaigns import seed_campaigns
from callcenter.runtime import run_engine
from callcenter.store.migrate import upgrade


def serve(parts: str = typer.Option("all", "--parts", help="comma list of web,agi,dialer,care,scheduler,bank "
                                                            "(several processes need PostgreSQL)")) -> None:
    """Start the engine (all parts, or those of ``--parts``) on the configured database and telephony."""
    from callcenter.runtime import PartsError, check_parts_for_database, parse_parts

    core = make_core()
    try:
        chosen = parse_parts(parts)
        check_parts_for_database(chosen, core.database.dialect.name)
    except PartsError as exc:
        core.close()
        typer.echo(f"callcenter: {exc}", err=True)
        raise typer.Exit(2) from None
    _start(core, chosen)


def run(clients: int = typer.Option(2000, help="demo clients to seed into an empty database")) -> None:
    """Migrate, seed demo data when the database is empty, print the demo logins, and start the engine."""
    core = make_core()
    upgrade(core.database)
    start_simulated_bank(core)
    summary = seed(core.sessions, clients=clients)
    if summary is not None:
        typer.echo(f"seeded demo brokerage: {summary.clients} clients, {summary.staff} staff")
    if core.settings.bank_simulator:
        opened, _ = open_demo_bank_accounts(core)
        if opened:
            typer.echo(f"opened {opened} demo accounts at the simulated bank")
    demo_campaigns = seed_campaigns(core)
    if demo_campaigns is not None:
        how = "running" if demo_campaigns.started else "as drafts: start them on the supervisor page"
        typer.echo(f"seeded demo campaigns ({how}): "
                   + ", ".join(f"{k} ({n} leads)" for k, n in demo_campaigns.leads.items()))
    s = core.settings
    typer.echo(f"web: http://{s.web_host}:{s.web_port}/  (API docs at /docs)")
    typer.echo(f"FastAGI: agi://{s.agi_host}:{s.agi_port}/hotline   telephony: {s.telephony_backend}")
    if s.bank_simulator:
        from sqlalchemy.engine import make_url

        books = make_url(s.bank_database_url).render_as_string(hide_password=True)
        typer.echo(f"bank: {s.bank_url} (simulated depository bank, books in {books})")
    print_demo_logins()
    _start(core)


def start_simulated_bank(core) -> None:
    """Start the simulated bank's process before seeding (the seed opens accounts there); the engine's
    "bank" part then keeps it running. Nothing when a real bank gateway is configured."""
    from callcenter.bank.runner import BankStartError

    proc = core.bank_process
    if proc is None:
        return
    try:
        proc.start()
    except BankStartError as exc:
        core.close()
        typer.echo(f"callcenter: {exc}", err=True)
        raise typer.Exit(1) from None


def _start(core, parts: tuple[str, ...] | None = None) -> None:
    from callcenter.runtime import PART_NAMES, default_runners

    chosen = parts or PART_NAMES
    try:
        asyncio.run(run_engine(core, default_runners(chosen), with_web="web" in chosen))
    except KeyboardInterrupt:
        pass
    finally:
        if core.bank_process is not None:
            core.bank_process.stop()
        core.close()
