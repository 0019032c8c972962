"""Client-care commands, registered as three areas:
``callcenter reminders plan|run|init-rules`` (this module's ``app``), ``callcenter events import``
(``cli_events.app``), ``callcenter complaints open|move|list|overdue`` and ``callcenter complaints callbacks
build|coverage`` (``cli_complaints.app``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

reminders = typer.Typer(help="提醒与祝福 · reminders and greetings", no_args_is_help=True)
events = typer.Typer(help="公司事件（配股、增发、权证、新股、分红）· corporate events", no_args_is_help=True)
complaints = typer.Typer(help="投诉与回访 · complaints and call-backs", no_args_is_help=True)
callbacks = typer.Typer(help="回访 · call-backs", no_args_is_help=True)
complaints.add_typer(callbacks, name="callbacks")
app = reminders


def _core():
    from callcenter.commands.common import make_core

    return make_core()


def _day(value: str | None) -> date:
    return date.fromisoformat(value) if value else date.today()


@reminders.command("plan")
def plan(day: str = typer.Option(None, "--date", help="YYYY-MM-DD (default today)"),
         lang: str = typer.Option("zh-CN", "--lang")) -> None:
    """列出当天将发送的提醒与祝福（不发送）· dry run: what would go out that day, to whom, how and why."""
    from rich.console import Console
    from rich.table import Table

    from callcenter.care.planner import plan_day
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
    from callcenter.care.dispatch import run_daily_reminders
    from callcenter.care.sms import make_sms_sender

    core = _core()
    report = run_daily_reminders(core, _day(day), sms=make_sms_sender(core.settings))
    typer.echo(f"sent={report.sent} failed={report.failed} notify_calls_queued={report.queued_calls} "
               f"agent_callbacks={report.agent_callbacks} skipped={report.skipped}")
    core.close()


@reminders.command("init-rules")
def init_rules() -> None:
    """把默认提醒规则写入数据库以便修改 · write the default rules into the store."""
    from callcenter.care.planner import ensure_default_rules
    from callcenter.store.db import run_in_transaction

    core = _core()
    typer.echo(f"rules added: {run_in_transaction(core.sessions, ensure_default_rules)}")
    core.close()


@events.command("import")
def import_events(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """导入事件 CSV（逐行报告错误）· import a CSV of events; bad rows are listed and skipped."""
    from callcenter.care.events import import_events_csv

    core = _core()
    report = import_events_csv(core.sessions, file.read_text(encoding="utf-8-sig"), core.clock(),
                               source=f"csv:{file.name}")
    typer.echo(f"created={report.created} updated={report.updated} unchanged={report.unchanged} "
               f"errors={len(report.errors)}")
    for err in report.errors:
        typer.echo(f"  line {err.line}: {'; '.join(err.messages)}", err=True)
    core.close()
    if report.errors:
        raise typer.Exit(1)


@complaints.command("open")
def complaint_open(client_id: int, category: str, text: str,
                   channel: str = typer.Option("agent"), call_ref: str = typer.Option("")) -> None:
    """登记投诉 · open a complaint."""
    from callcenter.care.complaints import ComplaintService

    core = _core()
    typer.echo(ComplaintService.for_app(core).open(client_id, category, text, channel=channel, call_ref=call_ref))
    core.close()


@complaints.command("move")
def complaint_move(complaint_id: int, status: str, resolution: str = typer.Option(None),
                   note: str = typer.Option("")) -> None:
    """变更投诉状态（关闭后自动安排满意度回访）· change status; closing schedules a satisfaction call-back."""
    from callcenter.care.complaints import ComplaintService

    core = _core()
    view = ComplaintService.for_app(core).move(complaint_id, status, staff_id=None, note=note, resolution=resolution)
    typer.echo(f"{view.id} {view.status}")
    core.close()


@complaints.command("overdue")
def complaint_overdue() -> None:
    """超时未处理的投诉 · overdue complaints."""
    from callcenter.care.complaints import ComplaintService

    core = _core()
    for c in ComplaintService.for_app(core).overdue():
        typer.echo(f"{c.id}\tclient={c.client_id}\t{c.category}\t{c.status}\tdue={c.due_at:%Y-%m-%d %H:%M}Z\towner={c.owner_id}")
    core.close()


@complaints.command("list")
def complaint_list(status: str = typer.Option(None)) -> None:
    from callcenter.care.complaints import ComplaintService

    core = _core()
    for c in ComplaintService.for_app(core).list(status=status):
        flag = "\tOVERDUE" if c.overdue else ""
        typer.echo(f"{c.id}\tclient={c.client_id}\t{c.category}\t{c.status}\tdue={c.due_at:%Y-%m-%d %H:%M}Z{flag}")
    core.close()


@callbacks.command("build")
def callbacks_build(day: str = typer.Option(None, "--date"), hand_over_: bool = typer.Option(True, "--hand-over/--no-hand-over")) -> None:
    """生成合规回访任务并交给外呼 · build regulatory call-backs (and hand them to the dialler)."""
    from callcenter.care.callbacks import hand_over
    from callcenter.care.regulatory import build_regulatory_callbacks

    core = _core()
    the_day = _day(day)
    r = build_regulatory_callbacks(core, the_day)
    typer.echo(f"new_accounts={r.new_accounts} annual={r.annual}")
    if hand_over_:
        typer.echo(f"handed_over={hand_over(core, the_day)}")
    core.close()


@callbacks.command("coverage")
def callbacks_coverage(year: int = typer.Option(None), day: str = typer.Option(None, "--date")) -> None:
    """回访覆盖率 · call-back coverage."""
    from callcenter.care.regulatory import coverage

    core = _core()
    the_day = _day(day)
    c = coverage(core, year or the_day.year, the_day)
    typer.echo(f"new accounts {c.new_accounts}: in time {c.new_called_in_time}, pending {c.new_pending}, "
               f"missed {c.new_missed} ({c.new_rate:.1%})")
    typer.echo(f"existing {c.existing_clients}: called {c.existing_called} / target {c.existing_target} "
               f"({c.existing_rate:.1%}) {'OK' if c.annual_met else 'BELOW TARGET'}")
    core.close()
