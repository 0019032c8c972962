from __future__ import annotations

import asyncio

import typer

from callcenter.commands.common import make_core
from callcenter.commands.demo import print_demo_logins
from callcenter.demo.seed import seed
from callcenter.demo.seed_campaigns import seed_campaigns
from callcenter.runtime import run_engine
from callcenter.store.migrate import upgrade


def serve() -> None:
    """Start the engine (web, FastAGI, dialler, scheduler) on the configured database and telephony."""
    core = make_core()
    _start(core)


def run(clients: int = typer.Option(2000, help="demo clients to seed into an empty database")) -> None:
    """Migrate, seed demo data when the database is empty, print the demo logins, and start the engine."""
    core = make_core()
    upgrade(core.engine)
    summary = seed(core.sessions, clients=clients)
    if summary is not None:
        typer.echo(f"seeded demo brokerage: {summary.clients} clients, {summary.staff} staff")
    demo_campaigns = seed_campaigns(core)
    if demo_campaigns is not None:
        typer.echo("seeded demo campaigns: " + ", ".join(f"{k} ({n} leads)" for k, n in demo_campaigns.leads.items()))
    s = core.settings
    typer.echo(f"web: http://{s.web_host}:{s.web_port}/  (API docs at /docs)")
    typer.echo(f"FastAGI: agi://{s.agi_host}:{s.agi_port}/hotline   telephony: {s.telephony_backend}")
    print_demo_logins()
    _start(core)


def _start(core) -> None:
    try:
        asyncio.run(run_engine(core))
    except KeyboardInterrupt:
        pass
    finally:
        core.close()
