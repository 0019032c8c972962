"""Monthly KPIs of the service groups (考核) and their ranking.

For each group and month: total assets of its clients at the start (last month's close snapshot) and at the
end (now, when the month is closed), asset growth split into net deposits (bank->fund minus fund->bank
transfers done in the month) and investment gain (the rest), asset turnover (trade volume / average assets),
contacts made and complaints (from the desk's contact records), and the mean quality-inspection (质检) score of the
month's evaluations of the group's agents (``callcenter.services.quality``). Ranking order: asset growth, then
the 质检 score, then contacts, then fewer complaints. The ranking marks the top 2 and bottom 2.

The trade volume comes from a pluggable ``TradeVolume`` source; the default, ``trades_volume``, sums the value of
the clients' trades (成交, ``trades``: the phone orders' fills) dated in the month, buys and sells alike. A
brokerage whose clients also trade elsewhere wires its back-office feed here instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, Select, case, cast, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.access import Actor, may_watch_agent
from callcenter.services.groups import client_assets_fen, list_groups
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, Order, Trade, Transfer
from callcenter.store.models.desk import ClientAssetSnapshot, DeskContact, GroupKpi

TradeVolume = Callable[[Session, list[int], date, date], int]


def no_trade_feed(s: Session, client_ids: list[int], first: date, last: date) -> int:
    return 0


def trades_volume(s: Session, client_ids: list[int], first: date, last: date) -> int:
    """The value (fen) of every trade of ``client_ids`` dated ``first``..``last``."""
    if not client_ids:
        return 0
    total = s.execute(select(func.coalesce(func.sum(Trade.value_fen), 0)).join(Order, Order.id == Trade.order_id)
                      .where(Order.client_id.in_(client_ids), Trade.trade_date >= first,
                             Trade.trade_date <= last)).scalar_one()
    return int(total)


def month_bounds(month: str) -> tuple[date, date]:
    """First day of ``month`` (YYYY-MM) and first day of the next month."""
    year, mon = int(month[:4]), int(month[5:7])
    first = date(year, mon, 1)
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    return first, nxt


def previous_month(month: str) -> str:
    first, _ = month_bounds(month)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@dataclass(frozen=True)
class KpiRow:
    group_id: int
    group_name: str
    clients: int
    assets_start_fen: int
    assets_end_fen: int
    net_deposits_fen: int
    investment_gain_fen: int
    turnover_bp: int
    contacts: int
    complaints: int
    rank: int
    mark: str  # "top" / "bottom" / ""
    qa_score_pct: float | None = None  # mean 质检 score of the month (None: no evaluation)
    qa_evaluations: int = 0

    @property
    def growth_fen(self) -> int:
        return self.assets_end_fen - self.assets_start_fen


def _utc_range(first: date, nxt: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return (datetime.combine(first, time(0), tz), datetime.combine(nxt, time(0), tz))


def compute_month(sessions: sessionmaker[Session], month: str, now: datetime, tz: ZoneInfo, *,
                  trade_volume: TradeVolume = trades_volume) -> list[KpiRow]:
    """Close ``month``: snapshot every grouped client's assets, compute and store each group's KPIs and rank.
    Running it again for the same month replaces that month's figures (idempotent)."""
    first, nxt = month_bounds(month)
    start_utc, end_utc = _utc_range(first, nxt, tz)
    prev = previous_month(month)

    def work(s: Session) -> list[KpiRow]:
        from callcenter.services.quality import group_month_scores

        groups = list_groups(s)
        qa = group_month_scores(s, month)
        s.execute(delete(GroupKpi).where(GroupKpi.month == month))
        s.execute(delete(ClientAssetSnapshot).where(ClientAssetSnapshot.month == month))
        prev_assets = dict(s.execute(select(ClientAssetSnapshot.client_id, ClientAssetSnapshot.assets_fen)
                                     .where(ClientAssetSnapshot.month == prev)).all())
        rows: list[GroupKpi] = []
        for g in groups:
            client_ids = list(s.execute(select(Client.id).where(Client.service_group_id == g.id)).scalars())
            end_total = 0
            start_total = 0
            for cid in client_ids:
                assets = client_assets_fen(s, cid)
                s.add(ClientAssetSnapshot(month=month, client_id=cid, assets_fen=assets))
                end_total += assets
                start_total += prev_assets.get(cid, 0)
            net = 0
            if client_ids:
                for kind, total in s.execute(
                        select(Transfer.kind, func.coalesce(func.sum(Transfer.amount_fen), 0))
                        .where(Transfer.client_id.in_(client_ids), Transfer.status == "done",
                               Transfer.trade_date >= first, Transfer.trade_date < nxt)
                        .group_by(Transfer.kind)).all():
                    net += int(total) if kind == "bank_to_fund" else -int(total) if kind == "fund_to_bank" else 0
            contacts, complaints = s.execute(
                select(func.count(DeskContact.id), func.coalesce(func.sum(case((DeskContact.complaint.is_(True), 1), else_=0)), 0))
                .where(DeskContact.client_id.in_(client_ids) if client_ids else DeskContact.id < 0,
                       DeskContact.started_at >= start_utc, DeskContact.started_at < end_utc,
                       DeskContact.disposition != "")).one()
            volume = trade_volume(s, client_ids, first, nxt - timedelta(days=1))
            avg = (start_total + end_total) // 2
            turnover_bp = volume * 10_000 // avg if avg > 0 else 0
            row = GroupKpi(month=month, group_id=g.id, clients=len(client_ids), assets_start_fen=start_total,
                           assets_end_fen=end_total, net_deposits_fen=net,
                           investment_gain_fen=end_total - start_total - net, trade_volume_fen=volume,
                           turnover_bp=turnover_bp, contacts=int(contacts), complaints=int(complaints or 0),
                           qa_score_pct=qa[g.id][0] if g.id in qa else None,
                           qa_evaluations=qa[g.id][1] if g.id in qa else 0, rank=0, computed_at=now)
            s.add(row)
            rows.append(row)
        for i, row in enumerate(sorted(rows, key=score_key)):
            row.rank = i + 1
        s.flush()
        return _views(s, month)

    return run_in_transaction(sessions, work)


def score_key(row: GroupKpi) -> tuple[int, float, int, int, int]:
    """Ranking order: asset growth, then the 质检 score, then contacts, then fewer complaints, then group id."""
    return (-(row.assets_end_fen - row.assets_start_fen), -(row.qa_score_pct or 0.0), -row.contacts,
            row.complaints, row.group_id)


def _views(s: Session, month: str, group_ids: frozenset[int] | None = None) -> list[KpiRow]:
    names = {g.id: g.name for g in list_groups(s)}
    rows = s.execute(select(GroupKpi).where(GroupKpi.month == month).order_by(GroupKpi.rank)).scalars().all()
    n = len(rows)
    out = []
    for r in rows:
        mark = "top" if r.rank <= 2 else "bottom" if r.rank > max(n - 2, 2) else ""
        if group_ids is not None and r.group_id not in group_ids:
            continue
        out.append(KpiRow(r.group_id, names.get(r.group_id, str(r.group_id)), r.clients, r.assets_start_fen,
                          r.assets_end_fen, r.net_deposits_fen, r.investment_gain_fen, r.turnover_bp, r.contacts,
                          r.complaints, r.rank, mark, r.qa_score_pct, r.qa_evaluations))
    return out


def latest_ranked_month(s: Session) -> str | None:
    """The latest month with a stored ranking (YYYY-MM), if any."""
    return s.execute(select(func.max(GroupKpi.month))).scalar()


def ranking(sessions: sessionmaker[Session], month: str, group_ids: frozenset[int] | None = None) -> list[KpiRow]:
    """The stored ranking of ``month`` (all groups, or only ``group_ids``), rank order."""
    return run_in_transaction(sessions, lambda s: _views(s, month, group_ids))


# --- wall board and reports (queries over the dialler's and the desk's records) ---------------------------

def _local_midnight_utc(now: datetime, tz: ZoneInfo, days_back: int = 0) -> datetime:
    local = now.astimezone(tz).date() - timedelta(days=days_back)
    return datetime.combine(local, time(0), tz)


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def open_calls_query(since: datetime) -> Select[int]:
    """Count of the attempts dialled since ``since`` and not ended: on the partial index ``ix_attempts_open`` (only
    the open attempts are in it), so its cost is the calls in flight, not the history."""
    from callcenter.store.models.dialer import Attempt

    return select(func.count()).select_from(Attempt).where(Attempt.ended_at.is_(None), Attempt.dialled_at >= since)


STATE_ORDER = ("talking", "reserved", "wrap_up", "ready", "paused")  # the grid's order: busiest first


def wallboard(s: Session, now: datetime, tz: ZoneInfo, *, service_level_s: float = 20.0) -> dict[str, Any]:
    """The wall board's snapshot (every viewer's: ``board_for`` cuts it to what one viewer may see).

    * ``agent_rows``: every signed-in agent (an open dialler session): name, service group, state (and pause
      reason), seconds in it, campaign, the open call's direction and talk time, calls taken today; busiest
      first (talking, reserved, wrap-up, ready, paused), the longest in their state first;
    * ``agents``: those agents counted by state;
    * calls in flight: ``ringing`` (dialled, not answered), ``answered`` (answered, no agent yet),
      ``connected`` (with an agent), ``in_flight`` (all three);
    * IVR hand-offs waiting for an agent (``ivr_waiting``, ``ivr_longest_s``: ``handoff.waiting_summary``) and
      today's ``service_level`` (hand-offs answered within ``service_level_s``: ``handoff.service_level``);
    * per running campaign: dials, contacts, 接通率, abandon rate today and over 30 days against its cap
      (``abandon_cap``: ``Campaign.target_abandon``; ``over_cap`` when today's rate passes it).

    The abandon rates are the dialler's own abandon budget (``dialer.budget.load_budgets``, the figures the
    pacers are held to): one owner for the figure.  Its 30 days are today and the 29 local days before.

    No figure reads the history: open calls, agents and IVR hand-offs come from partial indexes holding only the
    open rows (``ix_attempts_open_dialled``, ``ix_agent_sessions_open``, ``ix_ivr_sessions_open``), the agents'
    calls today from today's slice of ``ix_desk_contacts_agent_started`` for the signed-in agents, today's dials
    and contacts from today's slice of ``ix_attempts_dialled_campaign`` (which covers them), the service level
    from today's slice of ``ix_ivr_steps_handoffs``, the abandon rates from the ``abandon_days`` rollup (one row
    per campaign and day).  (``tests/db/test_query_plans.py``.)"""
    from callcenter.services import handoff
    from callcenter.services.desk import pause_codes_known
    from callcenter.services.dialer.budget import load_budgets
    from callcenter.store.models import ServiceGroup, Staff
    from callcenter.store.models.dialer import AgentSession, Attempt, Campaign

    today = _local_midnight_utc(now, tz)
    pause_codes = pause_codes_known(s)
    sessions = s.execute(select(AgentSession.staff_id, AgentSession.state, AgentSession.reason,
                                AgentSession.state_since, AgentSession.campaign_id, AgentSession.attempt_id,
                                Staff.display_name, Staff.service_group_id)
                         .join(Staff, Staff.id == AgentSession.staff_id)
                         .where(AgentSession.ended_at.is_(None), AgentSession.state.in_(AGENT_BOARD_STATES))).all()
    staff_ids = sorted({row.staff_id for row in sessions})
    calls_today: dict[int, int] = {}
    open_calls_of: dict[int, tuple[str, datetime, int | None]] = {}
    if staff_ids:
        from callcenter.store.models.desk import DeskContact

        for agent_id, started, hung_up, ended, direction, campaign_id in s.execute(
                select(DeskContact.agent_id, DeskContact.started_at, DeskContact.hung_up_at, DeskContact.ended_at,
                       DeskContact.direction, DeskContact.campaign_id)
                .where(DeskContact.agent_id.in_(staff_ids), DeskContact.started_at >= today)
                .order_by(DeskContact.id)).all():
            calls_today[agent_id] = calls_today.get(agent_id, 0) + 1
            if hung_up is None and ended is None:  # the live call (the newest, when several)
                open_calls_of[agent_id] = (direction, started, campaign_id)
    group_names = dict(s.execute(select(ServiceGroup.id, ServiceGroup.name)).all())
    campaign_ids = {row.campaign_id for row in sessions} | {c for _, _, c in open_calls_of.values()}
    campaign_names = dict(s.execute(select(Campaign.id, Campaign.name)
                                    .where(Campaign.id.in_(sorted(c for c in campaign_ids if c)))).all()) \
        if any(campaign_ids) else {}
    agent_rows: list[dict[str, Any]] = []
    for row in sessions:
        call = open_calls_of.get(row.staff_id)
        campaign_id = row.campaign_id or (call[2] if call else None)
        agent_rows.append({
            "staff_id": row.staff_id, "name": row.display_name, "group_id": row.service_group_id,
            "group": group_names.get(row.service_group_id, "") if row.service_group_id else "",
            "state": row.state, "reason": row.reason if row.state == "paused" and row.reason in pause_codes else "",
            "state_s": _seconds(now, row.state_since), "campaign": campaign_names.get(campaign_id, "") if campaign_id else "",
            "direction": call[0] if call else ("outbound" if row.attempt_id and row.state == "talking" else ""),
            "talk_s": _seconds(now, call[1]) if call and row.state == "talking" else None,
            "calls_today": calls_today.get(row.staff_id, 0)})
    agent_rows.sort(key=lambda r: (STATE_ORDER.index(r["state"]) if r["state"] in STATE_ORDER else len(STATE_ORDER),
                                   -r["state_s"], r["name"], r["staff_id"]))

    open_calls = open_calls_query(today - timedelta(hours=12))
    ringing = s.execute(open_calls.where(Attempt.answered_at.is_(None))).scalar_one()
    connected = s.execute(open_calls.where(Attempt.connected_at.is_not(None))).scalar_one()
    answered = s.execute(open_calls.where(Attempt.answered_at.is_not(None), Attempt.connected_at.is_(None))).scalar_one()
    waiting = handoff.waiting_since(s, now)
    ivr_waiting, longest = len(waiting), min((at for _, at in waiting), default=None)
    groups = _group_queue(s, now, waiting, agent_rows, group_names)
    level = handoff.service_level(s, today, now, service_level_s)

    rows = s.execute(select(Attempt.campaign_id, func.count(),
                            func.sum(case((Attempt.connected_at.is_not(None), 1), else_=0)))
                     .where(Attempt.dialled_at >= today).group_by(Attempt.campaign_id)).all()
    day = {cid: (int(n), int(c or 0)) for cid, n, c in rows}
    shown = list(s.execute(select(Campaign).where((Campaign.state.in_(("running", "paused")))
                                                  | Campaign.id.in_(list(day))).order_by(Campaign.id)).scalars())
    budgets = load_budgets(s, [camp.id for camp in shown], now, tz)
    campaigns = []
    for camp in shown:
        dials, contacts = day.get(camp.id, (0, 0))
        budget = budgets[camp.id]
        cap = float(camp.target_abandon)
        campaigns.append({"id": camp.id, "name": camp.name, "state": camp.state, "dials": dials,
                          "contacts": contacts, "connect_rate": _rate(contacts, dials),
                          "abandon_today": budget.today_rate, "abandon_30d": budget.d30_rate, "abandon_cap": cap,
                          "over_cap": budget.today_rate is not None and budget.today_rate > cap})
    return {"at": now.astimezone(tz).isoformat(), "agents": agent_counts(agent_rows), "agent_rows": agent_rows,
            "ringing": int(ringing), "answered": int(answered), "connected": int(connected),
            "in_flight": int(ringing) + int(answered) + int(connected), "ivr_waiting": ivr_waiting,
            "ivr_longest_s": _seconds(now, longest) if longest is not None else None,
            "service_level": {"threshold_s": level.threshold_s, "offered": level.offered, "met": level.met,
                              "rate": level.rate},
            "campaigns": campaigns, "groups": groups}


def _group_queue(s: Session, now: datetime, waiting: list[tuple[int | None, datetime]],
                 agent_rows: list[dict[str, Any]], group_names: dict[int, str]) -> list[dict[str, Any]]:
    """Per service group: the IVR hand-offs waiting (a caller's group is their client record's; a caller the
    hotline did not identify has none, ``group_id`` None), the longest of those waits, and the group's agents
    signed in, ready and talking. Groups with nobody signed in and nobody waiting are left out."""
    from callcenter.store.models import Client

    client_ids = sorted({cid for cid, _ in waiting if cid is not None})
    group_of: dict[int, int | None] = {cid: gid for cid, gid in s.execute(
        select(Client.id, Client.service_group_id).where(Client.id.in_(client_ids)))} if client_ids else {}
    rows: dict[int | None, dict[str, Any]] = {}

    def row(group_id: int | None) -> dict[str, Any]:
        if group_id not in rows:
            rows[group_id] = {"group_id": group_id, "group": group_names.get(group_id, "") if group_id else "",
                              "waiting": 0, "longest_s": None, "signed_in": 0, "ready": 0, "talking": 0}
        return rows[group_id]

    for client_id, at in waiting:
        r = row(group_of.get(client_id) if client_id is not None else None)
        r["waiting"] += 1
        r["longest_s"] = max(r["longest_s"] or 0, _seconds(now, at))
    for a in agent_rows:
        r = row(a["group_id"])
        r["signed_in"] += 1
        if a["state"] in ("ready", "talking"):
            r[a["state"]] += 1
    return sorted(rows.values(), key=lambda r: (r["group_id"] is None, r["group"], r["group_id"] or 0))


AGENT_BOARD_STATES = ("ready", "reserved", "talking", "wrap_up", "paused")  # an open session's states


def _seconds(now: datetime, since: datetime) -> int:
    return max(0, int((now - since).total_seconds()))


def agent_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return counts


def board_for(board: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """The snapshot as ``actor`` sees it: only the agents they may watch (``access.may_watch_agent``: a
    supervisor their groups', an admin all), and those counted by state; the per-group queue of those groups
    (and of the callers in no group); the calls and campaigns as they are."""
    rows = [r for r in board.get("agent_rows", []) if may_watch_agent(actor, r.get("group_id"))]
    # the per-group queue: their groups' rows; the callers of no group (not identified) are everybody's queue,
    # shown to whoever sees the board at all (a supervisor or an admin), without any agent of another group
    watcher = actor.role in ("supervisor", "admin")
    groups = [g for g in board.get("groups", []) if may_watch_agent(actor, g.get("group_id"))
              or (g.get("group_id") is None and watcher)]
    if actor.role != "admin":
        groups = [{**g, "signed_in": 0, "ready": 0, "talking": 0} if g.get("group_id") is None else g for g in groups]
    return {**board, "agent_rows": rows, "agents": agent_counts(rows), "groups": groups}


REPORT_DIMENSIONS = ("campaign", "agent", "day")


class ReportRow(TypedDict):
    key: object  # campaign id, staff id or local day (ISO)
    label: str
    attempts: int
    contacts: int
    talk_s: int
    appointments: int
    callbacks_kept: int
    dispositions: dict[str, int]


def report(s: Session, by: str, first: date, last: date, tz: ZoneInfo, *, rollup: bool | None = None) -> list[ReportRow]:
    """Per campaign, agent or day between ``first`` and ``last`` (local dates, inclusive): attempts, contacts,
    talk time, dispositions, appointments, callbacks kept (placed or done on time).

    The attempts are added up by the database. A range of ``rollups.LONG_RANGE_DAYS`` days or more (or
    ``rollup=True``) reads the ``attempt_days`` rollup (one row per day, campaign, agent and disposition, kept
    as attempts end: ``dialer.rollups``) for the closed attempts and adds the open ones (on the partial index of
    the open attempts), so its cost is the range's days, not its attempts; its days are those of the settings
    time zone, which ``tz`` must then be. A shorter range (or ``rollup=False``) groups the range's attempts
    (GROUP BY key and disposition over the range's index entries)."""
    from callcenter.services.dialer.rollups import LONG_RANGE_DAYS
    from callcenter.store.models import Staff
    from callcenter.store.models.dialer import Attempt, AttemptDay, Callback, Campaign

    if by not in REPORT_DIMENSIONS:
        raise ValueError("by")
    if rollup is None:
        rollup = (last - first).days + 1 >= LONG_RANGE_DAYS
    start = datetime.combine(first, time(0), tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tz)
    names: dict[object, str] = {}
    if by == "campaign":
        names = {cid: n for cid, n in s.execute(select(Campaign.id, Campaign.name))}
    elif by == "agent":
        names = {sid: n for sid, n in s.execute(select(Staff.id, Staff.display_name))}

    def key_of(campaign_id: int | None, agent_id: int | None, at: datetime) -> object:
        return campaign_id if by == "campaign" else agent_id if by == "agent" else at.astimezone(tz).date().isoformat()

    rows: dict[object, ReportRow] = {}

    def row(key: object) -> ReportRow:
        if key not in rows:
            label = names.get(key, "—" if key is None else str(key)) if by != "day" else str(key)
            rows[key] = {"key": key, "label": label, "attempts": 0, "contacts": 0, "talk_s": 0,
                         "appointments": 0, "callbacks_kept": 0, "dispositions": {}}
        return rows[key]

    def add(key: object, disposition: str | None, n: int, contacts: int, talk_s: int) -> None:
        r = row(key)
        r["attempts"] += n
        r["contacts"] += contacts
        r["talk_s"] += talk_s
        if disposition and n:
            d = r["dispositions"]
            d[disposition] = d.get(disposition, 0) + n
            if disposition == "appointment_booked":
                r["appointments"] += n

    if rollup:
        day_key: Any = {"campaign": AttemptDay.campaign_id, "agent": AttemptDay.agent_id, "day": AttemptDay.day}[by]
        for group, disposition, n, contacts, talk_s in s.execute(
                select(day_key, AttemptDay.disposition, func.sum(AttemptDay.attempts), func.sum(AttemptDay.contacts),
                       func.sum(AttemptDay.talk_s))
                .where(AttemptDay.day >= first, AttemptDay.day <= last).group_by(day_key, AttemptDay.disposition)):
            if not n:
                continue  # shares all moved elsewhere (a disposition changed)
            key: object = (group or None) if by == "agent" else group.isoformat() if by == "day" else group
            add(key, disposition or None, int(n), int(contacts or 0), int(talk_s or 0))
    # the attempts (all of the range, or only those still open) added up in SQL, one row per key and disposition
    postgres = s.get_bind().dialect.name == "postgresql"
    talk = (func.trunc(Attempt.talk_s) if postgres else cast(Attempt.talk_s, Integer))  # int() of each row's
    grouped: Any
    if by == "campaign":
        grouped = Attempt.campaign_id
    elif by == "agent":
        grouped = Attempt.agent_id
    elif postgres:
        grouped = cast(func.timezone(tz.key, Attempt.dialled_at), Date)
    else:  # SQLite keeps UTC as text: group by its hour (its minute in a zone off the whole hour), dated below
        whole_hours = all((tz.utcoffset(at) or timedelta()) % timedelta(hours=1) == timedelta()
                          for at in (start, end))
        grouped = func.substr(Attempt.dialled_at, 1, 13 if whole_hours else 16)
    query = (select(grouped, Attempt.disposition, func.count(),
                    func.sum(case((Attempt.connected_at.is_not(None), 1), else_=0)), func.coalesce(func.sum(talk), 0))
             .where(Attempt.dialled_at >= start, Attempt.dialled_at < end))
    if rollup:  # the open ones: on ix_attempts_open_dialled, whose predicate this repeats
        query = query.where(Attempt.ended_at.is_(None))
    for group, disposition, n, contacts, talk_s in s.execute(query.group_by(grouped, Attempt.disposition)).all():
        if by != "day":
            key = group
        elif postgres:
            key = group.isoformat()
        else:
            utc = datetime.strptime(str(group), "%Y-%m-%d %H" if len(str(group)) == 13 else "%Y-%m-%d %H:%M")
            key = utc.replace(tzinfo=timezone.utc).astimezone(tz).date().isoformat()
        add(key, disposition, int(n), int(contacts or 0), int(talk_s or 0))
    for cb in s.execute(select(Callback).where(Callback.due_at >= start, Callback.due_at < end,
                                               Callback.status.in_(("placed", "done")))).scalars():
        if cb.placed_at is not None and cb.placed_at <= cb.due_at + timedelta(minutes=15):
            r = row(key_of(cb.campaign_id, cb.owner_id, cb.due_at))
            r["callbacks_kept"] += 1
    return sorted(rows.values(), key=lambda r: str(r["key"]))
