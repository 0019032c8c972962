"""The hopper: claim dialable leads from the database, and record what happened to them.

Several dialler processes share one database.  A claim is a row update (``status='in_progress'``,
``claimed_by``, ``claimed_until``) made in the same transaction that picked the rows:

* PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` -- concurrent claimers skip each other's rows;
* SQLite: the transaction starts with ``BEGIN IMMEDIATE`` (``callcenter.store.db``), one writer at a time.

A claim expires (``claimed_until``): a crashed dialler's leads come back, and its unfinished attempts are
closed as ``lost`` (which does not use up an attempt); ``dialer.leases`` closes a dead dialler's at once.
``finish_attempt`` also counts live answers in the campaign's abandon budget (``dialer.budget``).  Every
function here takes an open ``Session`` and leaves the commit to the caller's transaction.

The claim costs its batch, not the list: the fresh leads come from the partial index ``ix_leads_dialable``
(the dialable statuses only, already in the claim's order), the expired claims from ``ix_leads_in_flight``;
each query stops after the batch (``tests/db/test_query_plans.py`` checks the plans on both databases).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Exists, Select, exists, or_, select, text, update
from sqlalchemy.orm import Session

from callcenter.services.dialer import rollups
from callcenter.services.dialer.budget import DEFAULT_TZ, count_attempt
from callcenter.domain.campaigns import (
    CampaignRules,
    LeadFacts,
    Window,
    after_attempt,
    dial_refusal,
    next_window_open,
)
from callcenter.store.db import dialect_name
from callcenter.store.models.dialer import DIALABLE_WHERE, Attempt, Campaign, DncEntry, Lead
from callcenter.ports.channel_variables import attempt_call_id

DEFAULT_LEASE = timedelta(minutes=10)


def rules_of(campaign: Campaign) -> CampaignRules:
    return CampaignRules(
        campaign_id=campaign.id,
        state=campaign.state,
        window=Window(campaign.window_start, campaign.window_end, campaign.days),
        max_attempts=campaign.max_attempts,
        retry_minutes=dict(campaign.retry_delays or {}),
    )


def facts_of(lead: Lead) -> LeadFacts:
    return LeadFacts(lead.phone, lead.status, lead.attempts, lead.timezone, lead.next_attempt_at, lead.claimed_until)


def dnc_clause(campaign_id_col: Any, phone_col: Any) -> Exists:  # columns or values
    return exists(
        select(DncEntry.id).where(
            DncEntry.phone == phone_col,
            or_(DncEntry.campaign_id.is_(None), DncEntry.campaign_id == campaign_id_col),
        )
    )


def _dialable_filters(campaign: Campaign, now: datetime) -> tuple[Any, ...]:
    return (
        Lead.attempts < campaign.max_attempts,
        or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now),
        ~dnc_clause(Lead.campaign_id, Lead.phone),
    )


CLAIM_ORDER = (Lead.priority.desc(), Lead.next_attempt_at.asc().nulls_first(), Lead.id)


def claim_key(lead: Lead) -> tuple[int, int, float, int]:
    """The claim's order in Python (``CLAIM_ORDER``): priority first, then due longest ago (never due first)."""
    due = lead.next_attempt_at
    return (-lead.priority, 0 if due is None else 1, 0.0 if due is None else due.timestamp(), lead.id)


def dialable_query(campaign: Campaign, now: datetime, limit: int) -> Select[Any]:
    """The campaign's next ``limit`` fresh leads (``new``/``retry``) that may be dialled now, in the claim's order.

    The status test is written with literal values, the predicate of the partial index ``ix_leads_dialable``
    (whose columns are the order): both databases walk the index in order and stop after ``limit`` rows, so the
    claim costs the batch, not the list."""
    return (
        select(Lead)
        .where(Lead.campaign_id == campaign.id, text("leads." + DIALABLE_WHERE),  # the index's own words
               *_dialable_filters(campaign, now))
        .order_by(*CLAIM_ORDER)
        .limit(limit)
    )


def expired_claims_query(campaign: Campaign, now: datetime, limit: int) -> Select[Any]:
    """The campaign's leads whose claim ran out (their dialler died), on the partial index ``ix_leads_in_flight``."""
    return (
        select(Lead)
        .where(Lead.campaign_id == campaign.id, text("leads.status = 'in_progress'"), Lead.claimed_until < now,
               *_dialable_filters(campaign, now))
        .order_by(*CLAIM_ORDER)
        .limit(limit)
    )


def _candidates(s: Session, campaign: Campaign, now: datetime, limit: int) -> list[Lead]:
    """Up to ``limit`` leads to look at, in the claim's order: the fresh ones and the expired claims (two indexed
    queries, each bounded by ``limit``; PostgreSQL locks the rows it returns, skipping those another claimer holds)."""
    rows: list[Lead] = []
    for query in (dialable_query(campaign, now, limit), expired_claims_query(campaign, now, limit)):
        if dialect_name(s) == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Lead)
        rows += s.scalars(query)
    return sorted(rows, key=claim_key)[:limit]


def claim_leads(
    s: Session,
    campaign: Campaign,
    dialer_id: str,
    n: int,
    now: datetime,
    is_trading_day: Callable[[date], bool],
    *,
    lease: timedelta = DEFAULT_LEASE,
) -> list[Lead]:
    """Claim up to ``n`` leads of a running campaign that may be dialled now, highest priority first.

    Leads found outside their window are pushed to their next window opening (so the hopper does not
    look at them again until then).  Never returns a lead in flight, on a DNC list, out of attempts,
    not yet due or outside its window.
    """
    if n <= 0 or campaign.state != "running":
        return []
    rules = rules_of(campaign)
    claimed: list[Lead] = []
    scanned = 0
    for _ in range(4):  # a few pages when many rows are outside their window
        rows = _candidates(s, campaign, now, max(4 * n, 20))
        if not rows:
            break
        scanned += len(rows)
        for lead in rows:
            if len(claimed) >= n:
                break
            reason = dial_refusal(facts_of(lead), rules, now, (), is_trading_day)
            if reason == "outside_window":
                opening = next_window_open(now, lead.timezone, rules.window, is_trading_day)
                lead.next_attempt_at = opening or now + timedelta(days=365)
                if lead.status == "in_progress":
                    _close_lost(s, lead, now)
                    lead.status = "retry"
                    lead.claimed_by = lead.claimed_until = None
                lead.updated_at = now
                continue
            if reason is not None:
                continue
            if lead.status == "in_progress":  # a claim that expired: its dialler died
                _close_lost(s, lead, now)
            lead.status = "in_progress"
            lead.claimed_by = dialer_id
            lead.claimed_until = now + lease
            lead.updated_at = now
            claimed.append(lead)
        s.flush()
        if len(claimed) >= n or len(rows) < max(4 * n, 20):
            break
    return claimed


def _close_lost(s: Session, lead: Lead, now: datetime) -> None:
    """The lead's attempts left open by a dialler that died: closed ``lost`` (and counted in the rollup)."""
    for attempt in list(s.scalars(select(Attempt).where(Attempt.lead_id == lead.id, Attempt.ended_at.is_(None)))):
        attempt.ended_at, attempt.outcome, attempt.hangup_text = now, "lost", "dialler lost the call"
        rollups.add_share(s, attempt)


def claim_one(s: Session, lead_id: int, dialer_id: str, now: datetime, lease: timedelta = DEFAULT_LEASE) -> Lead | None:
    """Claim one given lead (callbacks): only when it is not in flight right now."""
    query = select(Lead).where(Lead.id == lead_id)
    if dialect_name(s) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    lead = s.scalars(query).first()
    if lead is None or (lead.status == "in_progress" and lead.claimed_until is not None and lead.claimed_until > now):
        return None
    if lead.status == "in_progress":
        _close_lost(s, lead, now)
    lead.claimed_by = dialer_id
    lead.claimed_until = now + lease
    lead.status = "in_progress"
    lead.updated_at = now
    return lead


def renew_claims(s: Session, dialer_id: str, lead_ids: list[int], until: datetime) -> None:
    if lead_ids:
        s.execute(
            update(Lead)
            .where(Lead.id.in_(lead_ids), Lead.claimed_by == dialer_id, Lead.status == "in_progress")
            .values(claimed_until=until)
        )


def release_lead(s: Session, lead: Lead, now: datetime, *, status: str | None = None, at: datetime | None = None) -> None:
    """Give a claimed lead back without an attempt (preview skip, dialler stopping)."""
    lead.status = status or ("new" if lead.attempts == 0 else "retry")
    lead.next_attempt_at = at
    lead.claimed_by = None
    lead.claimed_until = None
    lead.updated_at = now


def start_attempt(
    s: Session, lead: Lead, campaign: Campaign, dialer_id: str, now: datetime, *, mode: str,
    agent_id: int | None = None, callback_id: int | None = None,
) -> Attempt:
    attempt = Attempt(
        lead_id=lead.id, campaign_id=campaign.id, attempt_no=lead.attempts + 1, agent_id=agent_id,
        callback_id=callback_id, dialer_id=dialer_id, phone=lead.phone, mode=mode, dialled_at=now,
        abandoned=False, notes="", hangup_text="", amd_cause="", server="",
    )
    s.add(attempt)
    s.flush()
    attempt.call_id = attempt_call_id(attempt.id)
    return attempt


def finish_attempt(
    s: Session,
    attempt: Attempt,
    outcome: str,
    now: datetime,
    *,
    lead_outcome: str | None = None,
    cause: int | None = None,
    cause_text: str = "",
    talk_s: float | None = None,
    abandoned: bool = False,
    tz: tzinfo = DEFAULT_TZ,
) -> Lead:
    """Close an attempt and move its lead on (retry, done, exhausted) by the campaign's rules.

    A live answer is counted in the campaign's abandon budget for its local day in ``tz`` (the settings time
    zone; ``callcenter.services.dialer.budget``), once: closing an attempt already closed does not count it again.
    """
    first_close = attempt.ended_at is None
    if not first_close:  # closed again: its share in the reports' rollup is replaced
        rollups.add_share(s, attempt, tz, sign=-1)
    attempt.ended_at = now
    attempt.outcome = outcome
    attempt.hangup_cause = cause
    attempt.hangup_text = cause_text[:64]
    attempt.talk_s = talk_s
    attempt.abandoned = abandoned
    if first_close:
        count_attempt(s, attempt, tz)
    rollups.add_share(s, attempt, tz)
    lead = s.get(Lead, attempt.lead_id)
    campaign = s.get(Campaign, attempt.campaign_id)
    assert lead is not None and campaign is not None
    if lead.status in ("dnc",):  # put on DNC while the call was up: stays there
        lead.claimed_by = lead.claimed_until = None
        return lead
    upd = after_attempt(lead_outcome or outcome, lead.attempts, rules_of(campaign), now, disposition=attempt.disposition)
    lead.status = upd.status
    lead.attempts = upd.attempts
    lead.next_attempt_at = upd.next_attempt_at
    lead.last_outcome = outcome
    lead.claimed_by = None
    lead.claimed_until = None
    lead.updated_at = now
    return lead
