"""``callcenter campaign create|list|start|pause|resume|stop|recycle|schedule|assign|dnc``: outbound campaigns."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import typer

from callcenter.commands.common import (LANG, CallingDays, CampaignKind, DialMode, Lang, make_core as _core,
                                        print_table, local_time, refused as _refused)
from callcenter.i18n import t

app = typer.Typer(help="外呼活动 · outbound campaigns", no_args_is_help=True, add_completion=False)
campaign_app = app

# --- campaign -----------------------------------------------------------------------------------------


def _retry(value: str, lang: str) -> dict[str, float]:
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise typer.BadParameter(t("dialer.cli.bad_retry", lang), param_hint="--retry")
    return data


@app.command("create")
def create_cmd(
    name: str = typer.Argument(..., help="the campaign's name · 活动名称"),
    kind: CampaignKind = typer.Option("cold_leads", help="the kind of campaign · 活动类型"),
    script: str = typer.Option("cold_call", help="talk script id (scripts_templates/<id>.yaml)"),
    mode: DialMode = typer.Option("progressive", help="how calls are dialled · 拨号方式"),
    ratio: float = typer.Option(2.0, help="ratio mode: lines dialled per ready agent"),
    target_abandon: float = typer.Option(0.03, help="predictive mode: the abandon rate aimed at (0.03 = 3 %)"),
    caller_id: str = typer.Option("", help="the number shown to the called (default: the hotline setting)"),
    window: str = typer.Option("09:00-20:00", help="local calling hours of the lead, HH:MM-HH:MM"),
    days: CallingDays = typer.Option("working", help="the days calls are placed · 拨打日"),
    timezone: str = typer.Option("Asia/Shanghai", help="the campaign's time zone (IANA name)"),
    max_attempts: int = typer.Option(3, min=1, max=20, help="attempts per lead at most"),
    retry: str = typer.Option("{}", help='minutes per outcome as JSON, e.g. {"busy": 10, "no_answer": 120}'),
    priority: int = typer.Option(0, help="higher campaigns are dialled first"),
    lang: Lang = LANG,
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
                              retry_delays=_retry(retry, lang), priority=priority, script_ids=set(scripts()))
    except (RuleError, ValueError) as exc:
        raise _refused(exc, lang) from None
    finally:
        core.close()
    typer.echo(t("dialer.cli.created", lang, id=cid))


@app.command("list")
def list_cmd(lang: Lang = LANG) -> None:
    """活动列表 · every campaign with its kind, state, dialling mode and leads (times local)."""
    from sqlalchemy import func, select

    from callcenter.store.db import transaction
    from callcenter.store.models.dialer import Campaign, Lead

    core = _core()
    try:
        with transaction(core.sessions) as s:
            counts = dict(s.execute(select(Lead.campaign_id, func.count()).group_by(Lead.campaign_id)).all())
            rows = [(c.id, c.name, t(f"web.kind.{c.kind}", lang), t(f"web.cstate.{c.state}", lang),
                     t(f"web.mode.{c.dial_mode}", lang), counts.get(c.id, 0), local_time(c.created_at, core.settings.tz))
                    for c in s.scalars(select(Campaign).order_by(Campaign.id))]
    finally:
        core.close()
    print_table(lang, ("id", "name", "kind", "state", "mode", "leads", "created"), rows)


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
    typer.echo(t("dialer.cli.state", lang, id=campaign_id, state=t(f"campaigns.state.{state}", lang)))


@app.command("start")
def start_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"), lang: Lang = LANG) -> None:
    """开始外呼 · start the campaign (its leads are dialled in its calling hours)."""
    _transition("start", campaign_id, lang)


@app.command("pause")
def pause_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"), lang: Lang = LANG) -> None:
    """暂停 · pause the campaign (calls in progress finish)."""
    _transition("pause", campaign_id, lang)


@app.command("resume")
def resume_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"), lang: Lang = LANG) -> None:
    """继续 · resume a paused campaign."""
    _transition("resume", campaign_id, lang)


@app.command("stop")
def stop_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"), lang: Lang = LANG) -> None:
    """结束 · finish the campaign for good."""
    _transition("stop", campaign_id, lang)


@app.command("recycle")
def recycle_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"),
                max_passes: int = typer.Option(3, min=1, help="passes a lead may get in all"), lang: Lang = LANG) -> None:
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
def schedule_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"),
                 at: str = typer.Argument(..., help="ISO time with offset, e.g. 2026-11-26T09:00+08:00"),
                 lang: Lang = LANG) -> None:
    """排程 · schedule the campaign to start at a time."""
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise typer.BadParameter(t("dialer.cli.bad_time", lang), param_hint="AT") from None
    _transition("schedule", campaign_id, lang, when)


@app.command("assign")
def assign_cmd(campaign_id: int = typer.Argument(..., help="campaign id · 活动编号"),
               group: list[int] = typer.Option([], help="service group id (repeat)"),
               agent: list[int] = typer.Option([], help="staff id (repeat)"), lang: Lang = LANG) -> None:
    """指派 · give the campaign to service groups and/or agents."""
    from callcenter.services.dialer.campaigns import assign_campaign

    core = _core()
    try:
        assign_campaign(core, campaign_id, group_ids=group, staff_ids=agent)
    finally:
        core.close()


@app.command("dnc")
def dnc_cmd(phone: str = typer.Argument(..., help="the phone number · 电话号码"),
            campaign: int | None = typer.Option(None, help="campaign id (default: global list)"),
            reason: str = typer.Option("", help="why (kept with the entry)"), lang: Lang = LANG) -> None:
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
