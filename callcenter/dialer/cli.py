"""Command line of the outbound dialler.

* ``callcenter campaign create|list|start|pause|resume|stop|schedule|assign|dnc`` (``campaign_app``)
* ``callcenter leads import FILE --campaign ID`` and ``leads segment`` (``leads_app``)
* ``callcenter dialer run`` (the dialler alone, real time) and ``dialer simulate`` (``app``)
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.i18n import t

app = typer.Typer(help="外呼引擎 · outbound dialler", no_args_is_help=True, add_completion=False)
campaign_app = typer.Typer(help="外呼活动 · outbound campaigns", no_args_is_help=True, add_completion=False)
leads_app = typer.Typer(help="外呼名单 · lead lists", no_args_is_help=True, add_completion=False)

LANG = typer.Option("zh-CN", "--lang", help="message language: zh-CN or en")


def _core():
    from callcenter.commands.common import make_core

    return make_core()


def _refused(exc: Exception, lang: str) -> typer.Exit:
    sentence = getattr(exc, "sentence", None)
    typer.echo(t("dialer.cli.refused", lang, detail=sentence(lang) if callable(sentence) else str(exc)), err=True)
    return typer.Exit(1)


# --- campaign -----------------------------------------------------------------------------------------


@campaign_app.command("create")
def create_cmd(
    name: str = typer.Argument(...),
    kind: str = typer.Option("cold_leads", help="former_clients | cold_leads | dormant | reminder | callback"),
    script: str = typer.Option("cold_call", help="talk script id (scripts_templates/<id>.yaml)"),
    mode: str = typer.Option("progressive", help="preview | progressive | ratio | predictive"),
    ratio: float = typer.Option(2.0),
    target_abandon: float = typer.Option(0.03),
    caller_id: str = typer.Option(""),
    window: str = typer.Option("09:00-20:00", help="local calling hours of the lead, HH:MM-HH:MM"),
    days: str = typer.Option("working", help="trading | working | every"),
    timezone: str = typer.Option("Asia/Shanghai"),
    max_attempts: int = typer.Option(3),
    retry: str = typer.Option("{}", help='minutes per outcome as JSON, e.g. {"busy": 10, "no_answer": 120}'),
    priority: int = typer.Option(0),
    lang: str = LANG,
) -> None:
    """Create a campaign (draft)."""
    from callcenter.dialer.service import create_campaign
    from callcenter.domain.campaigns import RuleError
    from callcenter.services.desk import scripts

    start, _, end = window.partition("-")
    core = _core()
    try:
        cid = create_campaign(core, name=name, kind=kind, script_id=script, dial_mode=mode, ratio=ratio,
                              target_abandon=target_abandon, caller_id=caller_id, window_start=start,
                              window_end=end, days=days, timezone=timezone, max_attempts=max_attempts,
                              retry_delays=json.loads(retry), priority=priority, script_ids=set(scripts()))
    except (RuleError, ValueError) as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.created", lang, id=cid))


@campaign_app.command("list")
def list_cmd(lang: str = LANG) -> None:
    from sqlalchemy import select

    from callcenter.store.db import transaction
    from callcenter.store.models.dialer import Campaign

    core = _core()
    try:
        typer.echo(t("dialer.cli.list_header", lang))
        with transaction(core.sessions) as s:
            for c in s.scalars(select(Campaign).order_by(Campaign.id)):
                typer.echo(f"{c.id}  {c.state}  {c.dial_mode}  {c.name}")
    finally:
        core.close()


def _transition(action: str, campaign_id: int, lang: str, at: datetime | None = None) -> None:
    from callcenter.dialer import service
    from callcenter.domain.campaigns import CampaignRefused, RuleError

    core = _core()
    try:  # the one writer of a campaign's state, as for the pages and the scheduler
        state = service.campaign_action(core, campaign_id, action, at)
    except CampaignRefused as exc:
        typer.echo(t("dialer.cli.refused", lang, detail=service.refused_sentence(exc, lang)), err=True)
        raise typer.Exit(1) from None
    except RuleError as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.state", lang, id=campaign_id, state=state))


@campaign_app.command("start")
def start_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("start", campaign_id, lang)


@campaign_app.command("pause")
def pause_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("pause", campaign_id, lang)


@campaign_app.command("resume")
def resume_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("resume", campaign_id, lang)


@campaign_app.command("stop")
def stop_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("stop", campaign_id, lang)


@campaign_app.command("recycle")
def recycle_cmd(campaign_id: int, max_passes: int = typer.Option(3, min=1), lang: str = LANG) -> None:
    """Give exhausted leads another pass (campaigns created with recycling allowed)."""
    from callcenter.dialer import service
    from callcenter.domain.campaigns import RuleError

    core = _core()
    try:
        count = service.recycle_leads(core, campaign_id, max_passes=max_passes)
    except RuleError as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.recycled", lang, id=campaign_id, count=count))


@campaign_app.command("schedule")
def schedule_cmd(campaign_id: int, at: str = typer.Argument(..., help="ISO time with offset, e.g. 2026-11-26T09:00+08:00"),
                 lang: str = LANG) -> None:
    _transition("schedule", campaign_id, lang, datetime.fromisoformat(at))


@campaign_app.command("assign")
def assign_cmd(campaign_id: int, group: list[int] = typer.Option([], help="service group id (repeat)"),
               agent: list[int] = typer.Option([], help="staff id (repeat)"), lang: str = LANG) -> None:
    from callcenter.dialer.service import assign_campaign

    core = _core()
    try:
        assign_campaign(core, campaign_id, group_ids=group, staff_ids=agent)
    finally:
        core.close()


@campaign_app.command("dnc")
def dnc_cmd(phone: str, campaign: int | None = typer.Option(None, help="campaign id (default: global list)"),
            reason: str = typer.Option(""), lang: str = LANG) -> None:
    """Put a number on the do-not-call list."""
    from callcenter.dialer.leads import InvalidPhone
    from callcenter.dialer.service import add_dnc

    core = _core()
    try:
        add_dnc(core, phone, campaign_id=campaign, reason=reason)
    except InvalidPhone as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    scope = t("dialer.cli.dnc_global", lang) if campaign is None else t("dialer.cli.dnc_campaign", lang, id=campaign)
    typer.echo(t("dialer.cli.dnc_added", lang, scope=scope))


# --- leads --------------------------------------------------------------------------------------------


@leads_app.command("import")
def import_cmd(path: Path = typer.Argument(..., exists=True, dir_okay=False),
               campaign: int = typer.Option(..., "--campaign", help="campaign id"), lang: str = LANG) -> None:
    """Import a CSV or XLSX lead list: every row or none; every problem is listed (the same check as the
    supervisor page's upload)."""
    from callcenter.dialer.leads import LeadFileError, import_leads

    core = _core()
    try:
        report = import_leads(core, campaign, path)
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


@leads_app.command("segment")
def segment_cmd(
    segment: str = typer.Argument(..., help="former | dormant | holders | birthdays"),
    campaign: int = typer.Option(..., "--campaign"),
    months: int = typer.Option(12, help="former: closed within N months"),
    days: int = typer.Option(180, help="dormant: no trade for N days"),
    code: str = typer.Option("", help="holders: security code"),
    within_days: int = typer.Option(7, help="birthdays: within N days"),
    today: str = typer.Option("", help="YYYY-MM-DD (default: today)"),
    lang: str = LANG,
) -> None:
    from callcenter.dialer.segments import add_segment_leads

    core = _core()
    try:
        day = date.fromisoformat(today) if today else core.clock().date()
        result = add_segment_leads(core, campaign, segment, day, months=months, days=days, code=code,
                                   within_days=within_days)
    except ValueError as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.segment_added", lang, segment=segment, created=result.created, merged=result.merged))


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
    from callcenter.dialer.simrun import run_simulated_campaign
    from callcenter.settings import load_settings
    from callcenter.store.db import make_engine
    from callcenter.store.migrate import upgrade
    from callcenter.store.models import Base

    engine = make_engine(database_url)
    upgrade(engine)
    Base.metadata.create_all(engine, checkfirst=True)
    core = bootstrap(load_settings(database_url=database_url), engine=engine)
    try:
        report = asyncio.run(run_simulated_campaign(core, agents=agents, leads=leads, mode=mode, seed=seed))
    finally:
        core.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        typer.echo(t("dialer.cli.sim_result", lang, attempts=report.attempts, humans=report.humans,
                     connected=report.connected, abandoned=report.abandoned, rate=f"{report.abandon_rate:.2%}"))
