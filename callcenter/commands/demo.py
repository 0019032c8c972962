from __future__ import annotations

import typer

from callcenter.commands.common import LANG, Lang, make_core, progress_bar
from callcenter.demo.seed import (DEFAULT_RNG_SEED, DEMO_CALLER, DEMO_FUND_ACCOUNT, DEMO_LOGINS, DEMO_PIN,
                                  open_demo_bank_accounts, seed, staff_password)
from callcenter.ports.bank import BankUnavailable

app = typer.Typer(help="演示数据 · demo data", no_args_is_help=True)


def print_demo_logins() -> None:
    """What ``run`` and ``demo seed`` print. Never the IVR PIN: this output is the engine's log on a server;
    the PIN is in the README and in ``callcenter demo logins``, which a person asks for."""
    typer.echo("Demo logins (演示账号):")
    for username, password, role in DEMO_LOGINS:
        typer.echo(f"  {role:<10} {username} / {password}")
    typer.echo(f"Demo client for the IVR: fund account {DEMO_FUND_ACCOUNT}, caller {DEMO_CALLER}"
               " (its PIN: callcenter demo logins)")
    typer.echo("Every other demo login has its own password: callcenter demo logins")


@app.command("seed")
def seed_cmd(clients: int = typer.Option(2000, min=1, max=200_000, help="demo clients to make · 演示客户数"),
             rng_seed: int = DEFAULT_RNG_SEED, lang: Lang = LANG) -> None:
    """Build the demo brokerage into an empty database (does nothing when clients exist)."""
    core = make_core()
    with progress_bar("seed", lang, clients) as progress:
        summary = seed(core.sessions, clients=clients, rng_seed=rng_seed, progress=progress)
    if summary is None:
        typer.echo("database already has clients; demo data not written")
    else:
        typer.echo(f"seeded {summary.clients} clients ({summary.closed} former, {summary.dormant} dormant), "
                   f"{summary.fund_accounts} fund accounts, {summary.staff} staff in {summary.groups} service groups")
    if core.settings.bank_simulator:
        try:  # the bank's side of the demo, through its protocol (absent accounts only)
            opened, existing = open_demo_bank_accounts(core)
            typer.echo(f"simulated bank at {core.settings.bank_url}: {opened} accounts opened, {existing} already there")
        except BankUnavailable:
            typer.echo(f"simulated bank not reachable at {core.settings.bank_url}: its accounts are opened when "
                       "`callcenter run` starts it")
    print_demo_logins()


@app.command("logins")
def logins_cmd(rng_seed: int = DEFAULT_RNG_SEED) -> None:
    """Every demo staff login with its password (each one its own, derived from the seed)."""
    from sqlalchemy import select

    from callcenter.store.db import transaction
    from callcenter.store.models import Staff

    core = make_core()
    with transaction(core.sessions) as s:
        rows = s.execute(select(Staff.username, Staff.role).order_by(Staff.id)).all()
    for username, role in rows:
        typer.echo(f"  {role:<10} {username} / {staff_password(username, rng_seed)}")
    typer.echo(f"IVR demo client: fund account {DEMO_FUND_ACCOUNT}, PIN {DEMO_PIN}, caller {DEMO_CALLER}")
