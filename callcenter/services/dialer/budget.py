"""The abandon budget in the database (table ``abandon_days``, rule in ``callcenter.domain.abandon``).

Written by ``hopper.finish_attempt``: every closed attempt that was a live answer adds to its campaign's row
for the local day it ended on, in the transaction that closes it, by an atomic upsert (PostgreSQL and SQLite
``INSERT ... ON CONFLICT DO UPDATE SET humans = humans + ...``), so several diallers sharing a campaign add
up and a restarted dialler finds the day's real figures.  What counts (``counts_of``):

* humans: outcomes ``human`` (AMD said a person, or no AMD) and ``abandoned``;
* abandoned: the attempt's ``abandoned`` flag (or outcome ``abandoned``);
* connected: the human reached an agent (``connected_at`` set, or a talk time recorded).

Read by ``load_budgets`` -- the engine calls it where it builds ``DialerState`` (once per sync is enough)::

    budgets = load_budgets(s, [run.id for run in runs], wall_now, settings.tz)
    DialerState(now, views, in_flight, budget=budgets[run.id])

and by the wall board (``services.kpis.wallboard``), so the figure has one owner.

The local day is the settings time zone (``Settings.timezone``, Asia/Shanghai by default): ``finish_attempt``
takes it as ``tz=`` (default ``DEFAULT_TZ``), ``load_budgets`` as ``tz``; they must be the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.domain.abandon import AbandonBudget
from callcenter.store.db import dialect_name
from callcenter.store.models.dialer import AbandonDay, Attempt

__all__ = ["DAYS", "DEFAULT_TZ", "count_attempt", "counts_of", "load_budgets", "local_day"]

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")  # the settings default (Settings.timezone)
DAYS = 30  # the long window: today and the 29 local days before it

HUMAN_OUTCOMES = frozenset({"human", "abandoned"})


def local_day(at: datetime, tz: tzinfo) -> date:
    if at.tzinfo is None:
        raise ValueError("naive datetime: give an aware one (UTC)")
    return at.astimezone(tz).date()


def counts_of(attempt: Attempt) -> tuple[int, int, int]:
    """(humans, abandoned, connected) that a closed attempt adds to its campaign's day."""
    if attempt.outcome not in HUMAN_OUTCOMES:
        return 0, 0, 0
    abandoned = bool(attempt.abandoned) or attempt.outcome == "abandoned"
    connected = not abandoned and (attempt.connected_at is not None or attempt.talk_s is not None)
    return 1, int(abandoned), int(connected)


def add_counts(s: Session, campaign_id: int, day: date, humans: int, abandoned: int, connected: int) -> None:
    """Add to one campaign's day, atomically (an upsert; concurrent writers add up)."""
    if not (humans or abandoned or connected):
        return
    insert = postgresql.insert if dialect_name(s) == "postgresql" else sqlite.insert
    stmt = insert(AbandonDay).values(
        campaign_id=campaign_id, day=day, humans=humans, abandoned=abandoned, connected=connected
    )
    table = AbandonDay.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.campaign_id, table.c.day],
        set_={
            "humans": table.c.humans + stmt.excluded.humans,
            "abandoned": table.c.abandoned + stmt.excluded.abandoned,
            "connected": table.c.connected + stmt.excluded.connected,
        },
    )
    s.execute(stmt)


def count_attempt(s: Session, attempt: Attempt, tz: tzinfo = DEFAULT_TZ) -> None:
    """Count a just-closed attempt (``ended_at`` and ``outcome`` set) in its campaign's local day."""
    assert attempt.ended_at is not None
    humans, abandoned, connected = counts_of(attempt)
    add_counts(s, attempt.campaign_id, local_day(attempt.ended_at, tz), humans, abandoned, connected)


def load_budgets(s: Session, campaign_ids: Iterable[int], now: datetime, tz: tzinfo) -> dict[int, AbandonBudget]:
    """Every given campaign's budget: today (the local day of ``now`` in ``tz``) and the last ``DAYS`` local
    days (today included), in one query.  A campaign with nothing counted gets an empty budget."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    today = local_day(now, tz)
    first = today - timedelta(days=DAYS - 1)
    is_today = AbandonDay.day == today
    rows = s.execute(
        select(
            AbandonDay.campaign_id,
            func.sum(case((is_today, AbandonDay.humans), else_=0)),
            func.sum(case((is_today, AbandonDay.abandoned), else_=0)),
            func.sum(AbandonDay.humans),
            func.sum(AbandonDay.abandoned),
        )
        .where(AbandonDay.campaign_id.in_(ids), AbandonDay.day >= first, AbandonDay.day <= today)
        .group_by(AbandonDay.campaign_id)
    ).all()
    budgets = {cid: AbandonBudget() for cid in ids}
    for cid, th, ta, h, a in rows:
        budgets[cid] = AbandonBudget(int(th or 0), int(ta or 0), int(h or 0), int(a or 0))
    return budgets
