"""``callcenter reminders plan|run|init-rules``: reminders and greetings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from callcenter.commands.common import LANG, Lang, make_core as _core

app = typer.Typer(help="提醒与祝福 · reminders and greetings", no_args_is_help=True)
reminders = app

def _day(value: str | None) -> date:
    return date.fromisoformat(value) if value else date.today()


@reminders.command("plan")
def plan(day: str = typer.Option(None, "--date", help="YYYY-MM-DD (default today)"),
         lang: Lang = LANG) -> None:
    """列出当天将发送的提醒与祝福（不发送）· dry run: what would go out that day, to whom, how and why."""
    from rich.console import Console
    from rich.table import Table

    from callcenter.services.care.planner import plan_day
    from callcenter.i18n import t
    from callcenter.store.db import run_in_transaction

    core = _core()
    the_day = _day(day)
    items = run_in_transaction(core.sessions, lambda s: plan_day(s, the_day, core.calendar, lang=lang))
    table = Table(title=f"{the_day} · {len(items)}")
    for col in ("client", "mobile", "channel", "verdict", "reason", "message"):
        table.add_column(col)
    for i in items:
        table.add_row(f"{i.client_no} {i.client_name}", i.mobile_masked, t(f"care.channels.{i.channel}", lang),
                      i.verdict_text, i.reason, i.message)
    Console(width=200).print(table)
    core.close()


@reminders.command("run")
def run(day: str = typer.Option(None, "--date", help="YYYY-MM-DD (default today)")) -> None:
    """发送当天的提醒与祝福（可重复运行，不会重复发送）· send the day's reminders (idempotent)."""
    from callcenter.services.care.dispatch import run_daily_reminders
    from callcenter.bootstrap import sms_sender

    core = _core()
    report = run_daily_reminders(core, _day(day), sms=sms_sender(core.settings))
    typer.echo(f"sent={report.sent} failed={report.failed} notify_calls_queued={report.queued_calls} "
               f"agent_callbacks={report.agent_callbacks} skipped={report.skipped}")
    core.close()


@reminders.command("init-rules")
def init_rules() -> None:
    """把默认提醒规则写入数据库以便修改 · write the default rules into the store."""
    from callcenter.services.care.planner import ensure_default_rules
    from callcenter.store.db import run_in_transaction

    core = _core()
    typer.echo(f"rules added: {run_in_transaction(core.sessions, ensure_default_rules)}")
    core.close()
