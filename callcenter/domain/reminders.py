"""Pure reminder rules: which client gets which message on which day, by which channel, and why.

Standard library only; the trading calendar and the current time are passed in. The store and the senders
live elsewhere (planner, dispatch); everything that decides lives here so it can be tested on plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol

from callcenter.domain.birthdays import celebrates


class Calendar(Protocol):
    """The trading calendar as the rules see it (``callcenter.ports.calendar.Calendar`` satisfies it)."""

    def is_trading_day(self, day: date) -> bool: ...

    def add_trading_days(self, day: date, n: int) -> date: ...

EVENT_KINDS = ("rights_issue", "placing", "warrant_last_trading", "warrant_exercise", "ipo_subscription", "dividend")
CHANNELS = ("sms", "notify_call", "agent_call")

# 财经秘书 topics and whether a client who never chose gets them (corporate actions on holdings and birthday
# greetings are part of the base service; market news is opt-in).
TOPICS: dict[str, bool] = {
    "corporate_actions": True,  # 持仓股票的配股、增发、权证、分红提示
    "ipo": False,  # 新股申购提示
    "bulletin": False,  # 公司公告、资讯
    "market_close": False,  # 收盘综述
    "birthday": True,  # 生日祝福
    "trade_confirmation": False,  # 成交回报: an SMS on each fill (callcenter.services.care.trading_alerts)
    "price_alert": True,  # 行情报警: the alerts the client set (setting one is the opt-in; this switches them all)
}

# Which topic an event kind belongs to, and who the audience is ("holders" of the code, or "subscribers").
EVENT_TOPIC = {kind: "corporate_actions" for kind in EVENT_KINDS} | {"ipo_subscription": "ipo"}
EVENT_AUDIENCE = {kind: "holders" for kind in EVENT_KINDS} | {"ipo_subscription": "subscribers"}

# Channels as opt-outs name them.
OPT_OUT_CHANNEL = {"sms": "sms", "notify_call": "call", "agent_call": "call"}


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    kind: str = "event"  # event | birthday
    event_kind: str | None = None  # None: every kind
    code: str | None = None  # None: every security
    days_before: int = 0  # trading days before the event date
    channel: str = "sms"
    template: str = ""
    priority: int = 100

    def matches(self, event: "Event") -> bool:
        return (
            self.kind == "event"
            and (self.event_kind is None or self.event_kind == event.kind)
            and (self.code is None or self.code == event.code)
        )


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    code: str
    event_date: date
    security_name: str = ""


@dataclass(frozen=True)
class ClientFacts:
    id: int
    mobile: str
    language: str = "zh-CN"
    status: str = "active"
    birthday: date | None = None
    opted_out: frozenset[str] = frozenset()  # "sms", "call", "all"
    topics: frozenset[str] = frozenset(t for t, on in TOPICS.items() if on)  # topics the client gets
    holdings: frozenset[str] = frozenset()  # codes held (quantity > 0)


@dataclass(frozen=True)
class QuietHours:
    """Messages go out only between ``start`` and ``end`` local time (SMS and calls alike by default)."""

    sms_start: time = time(9, 0)
    sms_end: time = time(20, 0)
    call_start: time = time(9, 30)
    call_end: time = time(19, 30)

    def window(self, channel: str) -> tuple[time, time]:
        return (self.sms_start, self.sms_end) if channel == "sms" else (self.call_start, self.call_end)

    def allows(self, channel: str, local: datetime) -> bool:
        start, end = self.window(channel)
        return start <= local.time() < end

    def opens_at(self, channel: str, local: datetime) -> datetime:
        """When a message held back at ``local`` may go: now if allowed, else the next window opening."""
        start, end = self.window(channel)
        if self.allows(channel, local):
            return local
        day = local.date() if local.time() < start else local.date() + timedelta(days=1)
        return datetime.combine(day, start, tzinfo=local.tzinfo)


@dataclass(frozen=True)
class Candidate:
    """One message the rules want sent on ``day`` (before opt-outs, quiet hours and earlier sends)."""

    client_id: int
    subject: str  # the once-only key: event:<id> / birthday:<year>
    channel: str
    rule: Rule
    reason: str  # machine-readable reason code, rendered by the planner
    reason_params: dict[str, str] = field(default_factory=dict, compare=False)
    event: Event | None = None


def send_day(event_date: date, days_before: int, calendar: Calendar) -> date:
    """The trading day ``days_before`` trading days before ``event_date`` (0: the event date itself, moved
    to the trading day before it when the event falls on a closed day)."""
    if days_before == 0:
        return event_date if calendar.is_trading_day(event_date) else calendar.add_trading_days(event_date, -1)
    return calendar.add_trading_days(event_date, -days_before)


def rule_due(rule: Rule, event: Event, day: date, calendar: Calendar) -> tuple[bool, date]:
    """Whether the rule sends on ``day`` (a trading day at or after its send day, before the event date —
    a run missed on the send day catches up on the next trading day while the reminder is still useful)."""
    due = send_day(event.event_date, rule.days_before, calendar)
    if not calendar.is_trading_day(day):
        return False, due
    if day == due:
        return True, due
    return due < day < event.event_date, due


def firing(events: list[Event], rules: list[Rule], day: date, calendar: Calendar) -> list[tuple[Event, Rule, date]]:
    """(event, rule, due day) for every event that has a rule due on ``day``; the best rule per event wins
    (lowest priority number, then lowest id): each client hears about an event once, whatever the rules."""
    ordered = sorted((r for r in rules if r.kind == "event"), key=lambda r: (r.priority, r.id))
    out = []
    for event in events:
        for rule in ordered:
            if not rule.matches(event):
                continue
            fires, due = rule_due(rule, event, day, calendar)
            if fires:
                out.append((event, rule, due))
                break
    return out


def event_candidates(
    events: list[Event], rules: list[Rule], clients: list[ClientFacts], day: date, calendar: Calendar
) -> list[Candidate]:
    """One candidate per due event and client in its audience: holders of the code, or for new-share
    subscriptions the clients who subscribe to those alerts."""
    out: list[Candidate] = []
    for event, rule, due in firing(events, rules, day, calendar):
        audience = EVENT_AUDIENCE.get(event.kind, "holders")
        topic = EVENT_TOPIC.get(event.kind, "corporate_actions")
        for client in clients:
            if client.status == "closed":
                continue
            if audience == "holders" and event.code not in client.holdings:
                continue
            if audience == "subscribers" and topic not in client.topics:
                continue
            reason = "event_late" if day != due else ("event" if audience == "holders" else "event_subscribers")
            out.append(
                Candidate(
                    client.id, f"event:{event.id}", rule.channel, rule, reason,
                    {"kind": event.kind, "code": event.code, "days": str(rule.days_before),
                     "event_date": event.event_date.isoformat(), "due": due.isoformat()},
                    event,
                )
            )
    return out


def birthday_candidates(rules: list[Rule], clients: list[ClientFacts], day: date) -> list[Candidate]:
    rule = min((r for r in rules if r.kind == "birthday"), key=lambda r: (r.priority, r.id), default=None)
    if rule is None:
        return []
    out = []
    for client in clients:
        if client.status == "closed" or client.birthday is None:
            continue
        if celebrates(client.birthday, day):
            out.append(Candidate(client.id, f"birthday:{day.year}", rule.channel, rule, "birthday", {}))
    return out


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    verdict: str  # send | opted_out | unsubscribed | no_number | quiet_hours | already_sent
    not_before: datetime | None = None  # for quiet_hours: when it may go


def decide(
    candidate: Candidate, client: ClientFacts, local_now: datetime | None, quiet: QuietHours, already: bool
) -> Decision:
    """Apply earlier sends, opt-outs, subscriptions and quiet hours to one candidate, in that order
    (``local_now`` None: a plan for another day, quiet hours not judged)."""
    if already:
        return Decision(candidate, "already_sent")
    if "all" in client.opted_out or OPT_OUT_CHANNEL[candidate.channel] in client.opted_out:
        return Decision(candidate, "opted_out")
    topic = "birthday" if candidate.subject.startswith("birthday:") else (
        EVENT_TOPIC.get(candidate.event.kind, "corporate_actions") if candidate.event else None)
    if topic is not None and topic not in client.topics:
        return Decision(candidate, "unsubscribed")
    if candidate.channel != "agent_call" and not client.mobile:
        return Decision(candidate, "no_number")
    if local_now is not None and candidate.channel != "agent_call" and not quiet.allows(candidate.channel, local_now):
        return Decision(candidate, "quiet_hours", quiet.opens_at(candidate.channel, local_now))
    return Decision(candidate, "send")
