"""``callcenter dialer run`` (the dialler alone, real time) and ``dialer simulate``."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.commands.common import LANG, make_core as _core, refused as _refused
from callcenter.i18n import t

app = typer.Typer(help="外呼引擎 · outbound dialler", no_args_is_help=True, add_completion=False)

# --- dialler ------------------------------------------------------------------------------------------


@app.command("run")
def run_cmd(lang: str = LANG) -> None:
    """Run the dialler alone (real time, the configured telephony backend) until Ctrl-C."""
    from callcenter.parts.dialer import dialer_runner

    core = _core()

    async def main() -> None:
        stop = asyncio.Event()
        typer.echo(t("dialer.cli.runner_started", lang, dialer=core.settings.telephony_backend))
        await dialer_runner(core, stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        core.close()


@app.command("simulate")
def simulate_cmd(
    agents: int = typer.Option(10), leads: int = typer.Option(2000), mode: str = typer.Option("predictive"),
    seed: int = typer.Option(1), database_url: str = typer.Option("sqlite:///var/dialer-sim.db"),
    as_json: bool = typer.Option(False, "--json"), lang: str = LANG,
) -> None:
    """A whole campaign at accelerated time on the simulated PBX (a fresh database of its own)."""
    from callcenter.bootstrap import bootstrap
    from callcenter.demo.campaign_simulation import run_simulated_campaign
    from callcenter.settings import load_settings
    from callcenter.store.db import make_engine
    from callcenter.store.migrate import upgrade
    from callcenter.store.models import Base

    engine = make_engine(database_url)
    upgrade(engine)
    Base.metadata.create_all(engine, checkfirst=True)
    core = bootstrap(load_settings(database_url=database_url), database=engine)
    try:
        report = asyncio.run(run_simulated_campaign(core, agents=agents, leads=leads, mode=mode, seed=seed))
    finally:
        core.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        typer.echo(t("dialer.cli.sim_result", lang, attempts=report.attempts, humans=report.humans,
                     connected=report.connected, abandoned=report.abandoned, rate=f"{report.abandon_rate:.2%}"))
