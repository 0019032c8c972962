"""``callcenter campaign create|list|start|pause|resume|stop|recycle|schedule|assign|dnc``: outbound campaigns."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.commands.common import LANG, make_core as _core, refused as _refused
from callcenter.i18n import t

app = typer.Typer(help="外呼活动 · outbound campaigns", no_args_is_help=True, add_completion=False)
campaign_app = app

# --- campaign -----------------------------------------------------------------------------------------


@app.command("create")
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
    from callcenter.services.dialer.campaigns import create_campaign
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


@app.command("list")
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
    from callcenter.services.dialer import campaigns as service
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


@app.command("start")
def start_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("start", campaign_id, lang)


@app.command("pause")
def pause_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("pause", campaign_id, lang)


@app.command("resume")
def resume_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("resume", campaign_id, lang)


@app.command("stop")
def stop_cmd(campaign_id: int, lang: str = LANG) -> None:
    _transition("stop", campaign_id, lang)


@app.command("recycle")
def recycle_cmd(campaign_id: int, max_passes: int = typer.Option(3, min=1), lang: str = LANG) -> None:
    """Give exhausted leads another pass (campaigns created with recycling allowed)."""
    from callcenter.services.dialer import campaigns as service
    from callcenter.domain.campaigns import RuleError

    core = _core()
    try:
        count = service.recycle_leads(core, campaign_id, max_passes=max_passes)
    except RuleError as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.recycled", lang, id=campaign_id, count=count))


@app.command("schedule")
def schedule_cmd(campaign_id: int, at: str = typer.Argument(..., help="ISO time with offset, e.g. 2026-11-26T09:00+08:00"),
                 lang: str = LANG) -> None:
    _transition("schedule", campaign_id, lang, datetime.fromisoformat(at))


@app.command("assign")
def assign_cmd(campaign_id: int, group: list[int] = typer.Option([], help="service group id (repeat)"),
               agent: list[int] = typer.Option([], help="staff id (repeat)"), lang: str = LANG) -> None:
    from callcenter.services.dialer.campaigns import assign_campaign

    core = _core()
    try:
        assign_campaign(core, campaign_id, group_ids=group, staff_ids=agent)
    finally:
        core.close()


@app.command("dnc")
def dnc_cmd(phone: str, campaign: int | None = typer.Option(None, help="campaign id (default: global list)"),
            reason: str = typer.Option(""), lang: str = LANG) -> None:
    """Put a number on the do-not-call list."""
    from callcenter.services.dialer.leads import InvalidPhone
    from callcenter.services.dialer.campaigns import add_dnc

    core = _core()
    try:
        add_dnc(core, phone, campaign_id=campaign, reason=reason)
    except InvalidPhone as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    scope = t("dialer.cli.dnc_global", lang) if campaign is None else t("dialer.cli.dnc_campaign", lang, id=campaign)
    typer.echo(t("dialer.cli.dnc_added", lang, scope=scope))
