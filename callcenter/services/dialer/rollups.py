"""The reports' rollup (table ``attempt_days``): counters per local day, campaign, agent and disposition that do
not grow with the history.

Every closed attempt adds its share to the row of the local day it was DIALLED on (the settings time zone, as
``kpis.report`` keys its days), its campaign, its agent (0: none) and its disposition ('': none): one attempt,
one contact if it reached an agent (``connected_at`` set), its talk time in whole seconds. The share is added in
the transaction that closes the attempt (``hopper.finish_attempt``: the engine's record path, the take-over of a
dead dialler, a claim that finds an attempt left open) and moved when a closed attempt's disposition changes
(``campaigns.record_disposition_in``, the engine's ``CompleteDisposition``), by an atomic upsert
(``INSERT ... ON CONFLICT DO UPDATE SET attempts = attempts + ...``) so diallers sharing a campaign add up.

``kpis.report`` reads it for ranges of ``LONG_RANGE_DAYS`` days or more and adds the attempts still open (from
the partial index of the open attempts): a 30-day report reads about 30 rows per campaign and agent."""

from __future__ import annotations

from datetime import date, tzinfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.services.dialer.budget import DEFAULT_TZ, local_day
from callcenter.store.db import dialect_name
from callcenter.store.models.dialer import Attempt, AttemptDay

__all__ = ["LONG_RANGE_DAYS", "add_share", "move_disposition", "share_of"]

LONG_RANGE_DAYS = 7  # a report over this many local days or more reads the rollup

Key = tuple[date, int, int, str]


def share_of(attempt: Attempt, tz: tzinfo = DEFAULT_TZ, disposition: str | None = None) -> tuple[Key, int, int]:
    """(row key, contacts, talk seconds) that a closed attempt adds to the rollup; ``disposition`` instead of
    the attempt's own (its disposition before a change)."""
    key = (local_day(attempt.dialled_at, tz), attempt.campaign_id, attempt.agent_id or 0,
           (attempt.disposition if disposition is None else disposition) or "")
    return key, int(attempt.connected_at is not None), int(attempt.talk_s or 0)


def _add(s: Session, key: Key, attempts: int, contacts: int, talk_s: int) -> None:
    day, campaign_id, agent_id, disposition = key
    insert = postgresql.insert if dialect_name(s) == "postgresql" else sqlite.insert
    stmt = insert(AttemptDay).values(day=day, campaign_id=campaign_id, agent_id=agent_id, disposition=disposition,
                                     attempts=attempts, contacts=contacts, talk_s=talk_s)
    t = AttemptDay.__table__
    s.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.day, t.c.campaign_id, t.c.agent_id, t.c.disposition],
        set_={"attempts": t.c.attempts + stmt.excluded.attempts, "contacts": t.c.contacts + stmt.excluded.contacts,
              "talk_s": t.c.talk_s + stmt.excluded.talk_s}))


def add_share(s: Session, attempt: Attempt, tz: tzinfo = DEFAULT_TZ, sign: int = 1) -> None:
    """Add (``sign`` -1: take back) a closed attempt's share, in the caller's transaction."""
    key, contacts, talk = share_of(attempt, tz)
    _add(s, key, sign, sign * contacts, sign * talk)


def move_disposition(s: Session, attempt: Attempt, before: str | None, tz: tzinfo = DEFAULT_TZ) -> None:
    """A closed attempt's disposition changed from ``before`` to its current one: move its share."""
    if attempt.ended_at is None or (before or "") == (attempt.disposition or ""):
        return
    old, contacts, talk = share_of(attempt, tz, disposition=before or "")
    _add(s, old, -1, -contacts, -talk)
    add_share(s, attempt, tz)
