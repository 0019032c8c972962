"""``callcenter complaints open|move|list|overdue`` and ``complaints callbacks build|coverage``."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Literal, Optional
from zoneinfo import ZoneInfo

import typer

from callcenter.commands.common import LANG, Lang, local_time, make_core as _core, print_table
from callcenter.i18n import t

if TYPE_CHECKING:
    from callcenter.services.care.complaints import ComplaintView

# the choices (callcenter.services.care.complaints.CATEGORIES, store.models.care.COMPLAINT_STATUSES)
Category = Literal["service_attitude", "trading_system", "fund_transfer", "commission", "misleading_sales",
                   "unauthorized_trading", "account", "other"]
Status = Literal["open", "in_progress", "resolved", "closed"]
Channel = Literal["agent", "ivr", "web", "sms"]

app = typer.Typer(help="投诉与回访 · complaints and call-backs", no_args_is_help=True)
complaints = app
callbacks = typer.Typer(help="回访 · call-backs", no_args_is_help=True)
app.add_typer(callbacks, name="callbacks")

def _day(value: str | None) -> date:
    return date.fromisoformat(value) if value else date.today()


@complaints.command("open")
def complaint_open(client_id: int = typer.Argument(..., help="client id · 客户编号"),
                   category: Category = typer.Argument(..., help="complaint category · 投诉类别"),
                   text: str = typer.Argument(..., help="what the client says · 投诉内容"),
                   channel: Channel = typer.Option("agent", help="where it came in · 渠道"),
                   call_ref: str = typer.Option("", help="the call it was raised on"), lang: Lang = LANG) -> None:
    """登记投诉 · open a complaint."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    try:
        cid = ComplaintService.for_app(core).open(client_id, category, text, channel=channel, call_ref=call_ref)
    finally:
        core.close()
    typer.echo(t("care.cli.opened", lang, id=cid))


@complaints.command("move")
def complaint_move(complaint_id: int = typer.Argument(..., help="complaint id · 投诉编号"),
                   status: Status = typer.Argument(..., help="the new status · 新状态"),
                   resolution: Optional[str] = typer.Option(None, help="how it was resolved (when resolving)"),
                   note: str = typer.Option("", help="a note for the history"), lang: Lang = LANG) -> None:
    """变更投诉状态（关闭后自动安排满意度回访）· change status; closing schedules a satisfaction call-back."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    try:
        view = ComplaintService.for_app(core).move(complaint_id, status, staff_id=None, note=note, resolution=resolution)
    finally:
        core.close()
    typer.echo(t("care.cli.moved", lang, id=view.id, status=t(f"care.complaint_statuses.{view.status}", lang)))


@complaints.command("overdue")
def complaint_overdue(lang: Lang = LANG) -> None:
    """超时未处理的投诉 · overdue complaints."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    try:
        _table(ComplaintService.for_app(core).overdue(), core.settings.tz, lang)
    finally:
        core.close()


def _table(views: list[ComplaintView], tz: ZoneInfo, lang: str) -> None:
    rows = [(c.id, c.client_id, t(f"care.complaint_categories.{c.category}", lang),
             t(f"care.complaint_statuses.{c.status}", lang) + (t("care.cli.overdue", lang) if c.overdue else ""),
             local_time(c.opened_at, tz), local_time(c.due_at, tz)) for c in views]
    print_table(lang, ("id", "client", "category", "status", "opened", "due"), rows)


@complaints.command("list")
def complaint_list(status: Optional[Status] = typer.Option(None, help="only complaints in this status"),
                   lang: Lang = LANG) -> None:
    """投诉列表 · complaints, newest first, with their status and due time (local)."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    try:
        _table(ComplaintService.for_app(core).list(status=status), core.settings.tz, lang)
    finally:
        core.close()


@callbacks.command("build")
def callbacks_build(day: Optional[str] = typer.Option(None, "--date", help="YYYY-MM-DD (default today)"),
                    hand_over_: bool = typer.Option(True, "--hand-over/--no-hand-over",
                                                    help="also hand them to the dialler")) -> None:
    """生成合规回访任务并交给外呼 · build regulatory call-backs (and hand them to the dialler)."""
    from callcenter.services.care.callbacks import hand_over
    from callcenter.services.care.regulatory import build_regulatory_callbacks

    core = _core()
    the_day = _day(day)
    r = build_regulatory_callbacks(core, the_day)
    typer.echo(f"new_accounts={r.new_accounts} annual={r.annual}")
    if hand_over_:
        typer.echo(f"handed_over={hand_over(core, the_day)}")
    core.close()


@callbacks.command("coverage")
def callbacks_coverage(year: Optional[int] = typer.Option(None, help="the year (default: this year)"),
                       day: Optional[str] = typer.Option(None, "--date", help="as of YYYY-MM-DD (default today)")) -> None:
    """回访覆盖率 · call-back coverage."""
    from callcenter.services.care.regulatory import coverage

    core = _core()
    the_day = _day(day)
    c = coverage(core, year or the_day.year, the_day)
    typer.echo(f"new accounts {c.new_accounts}: in time {c.new_called_in_time}, pending {c.new_pending}, "
               f"missed {c.new_missed} ({c.new_rate:.1%})")
    typer.echo(f"existing {c.existing_clients}: called {c.existing_called} / target {c.existing_target} "
               f"({c.existing_rate:.1%}) {'OK' if c.annual_met else 'BELOW TARGET'}")
    core.close()
