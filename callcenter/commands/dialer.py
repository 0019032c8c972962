"""``callcenter dialer run`` (the dialler alone, real time) and ``dialer simulate``."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.commands.common import LANG, DialMode, Lang, make_core as _core, progress_bar, refused as _refused
from callcenter.i18n import t

app = typer.Typer(help="外呼引擎 · outbound dialler", no_args_is_help=True, add_completion=False)

# --- dialler ------------------------------------------------------------------------------------------


@app.command("run")
def run_cmd(lang: Lang = LANG) -> None:
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
    agents: int = typer.Option(10, min=1, max=500, help="simulated agents · 模拟坐席数"),
    leads: int = typer.Option(2000, min=1, max=200_000, help="leads in the campaign · 名单数"),
    mode: DialMode = typer.Option("predictive", help="how calls are dialled · 拨号方式"),
    seed: int = typer.Option(1, help="random seed of the simulated callers"),
    database_url: str = typer.Option("sqlite:///var/dialer-sim.db", help="the simulation's own database"),
    as_json: bool = typer.Option(False, "--json", help="the report as one JSON object"), lang: Lang = LANG,
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
        with progress_bar("simulate", lang, leads) as progress:
            report = asyncio.run(run_simulated_campaign(core, agents=agents, leads=leads, mode=mode, seed=seed,
                                                        progress=progress))
    finally:
        core.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        typer.echo(t("dialer.cli.sim_result", lang, attempts=report.attempts, humans=report.humans,
                     connected=report.connected, abandoned=report.abandoned, rate=f"{report.abandon_rate:.2%}"))
