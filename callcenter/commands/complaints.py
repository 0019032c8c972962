"""``callcenter complaints open|move|list|overdue`` and ``complaints callbacks build|coverage``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from callcenter.commands.common import make_core as _core

app = typer.Typer(help="投诉与回访 · complaints and call-backs", no_args_is_help=True)
complaints = app
callbacks = typer.Typer(help="回访 · call-backs", no_args_is_help=True)
app.add_typer(callbacks, name="callbacks")

def _day(value: str | None) -> date:
    return date.fromisoformat(value) if value else date.today()


@complaints.command("open")
def complaint_open(client_id: int, category: str, text: str,
                   channel: str = typer.Option("agent"), call_ref: str = typer.Option("")) -> None:
    """登记投诉 · open a complaint."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    typer.echo(ComplaintService.for_app(core).open(client_id, category, text, channel=channel, call_ref=call_ref))
    core.close()


@complaints.command("move")
def complaint_move(complaint_id: int, status: str, resolution: str = typer.Option(None),
                   note: str = typer.Option("")) -> None:
    """变更投诉状态（关闭后自动安排满意度回访）· change status; closing schedules a satisfaction call-back."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    view = ComplaintService.for_app(core).move(complaint_id, status, staff_id=None, note=note, resolution=resolution)
    typer.echo(f"{view.id} {view.status}")
    core.close()


@complaints.command("overdue")
def complaint_overdue() -> None:
    """超时未处理的投诉 · overdue complaints."""
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    for c in ComplaintService.for_app(core).overdue():
        typer.echo(f"{c.id}\tclient={c.client_id}\t{c.category}\t{c.status}\tdue={c.due_at:%Y-%m-%d %H:%M}Z\towner={c.owner_id}")
    core.close()


@complaints.command("list")
def complaint_list(status: str = typer.Option(None)) -> None:
    from callcenter.services.care.complaints import ComplaintService

    core = _core()
    for c in ComplaintService.for_app(core).list(status=status):
        flag = "\tOVERDUE" if c.overdue else ""
        typer.echo(f"{c.id}\tclient={c.client_id}\t{c.category}\t{c.status}\tdue={c.due_at:%Y-%m-%d %H:%M}Z{flag}")
    core.close()


@callbacks.command("build")
def callbacks_build(day: str = typer.Option(None, "--date"), hand_over_: bool = typer.Option(True, "--hand-over/--no-hand-over")) -> None:
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
def callbacks_coverage(year: int = typer.Option(None), day: str = typer.Option(None, "--date")) -> None:
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
