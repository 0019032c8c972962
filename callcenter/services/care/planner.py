"""The plan of one day: every reminder and greeting that would go out, to whom, by which channel and why.

``plan_day`` only reads; ``callcenter reminders plan --date`` prints it and ``dispatch`` sends from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from callcenter.domain import reminders as R
from callcenter.services.care.messages import ClientView, EventView, birthday_message, event_message
from callcenter.services.care.subscriptions import optouts_of, topics_of
from callcenter.domain.masking import mask_phone
from callcenter.i18n import t
from callcenter.ports.calendar import Calendar
from callcenter.services.segments import birthday_clients, holders_of
from callcenter.store.models import Client, FundAccount, Holding
from callcenter.store.models.care import CareDelivery, CareEvent, CareRule, CareSubscription

DEFAULT_RULES: tuple[R.Rule, ...] = (
    R.Rule(0, "权证最后交易日前3日短信", event_kind="warrant_last_trading", days_before=3, channel="sms", priority=10),
    R.Rule(0, "权证行权截止前2日语音通知", event_kind="warrant_exercise", days_before=2, channel="notify_call", priority=10),
    R.Rule(0, "配股缴款截止前3日短信", event_kind="rights_issue", days_before=3, channel="sms", priority=10),
    R.Rule(0, "增发认购截止前2日短信", event_kind="placing", days_before=2, channel="sms", priority=10),
    R.Rule(0, "新股申购前1日短信", event_kind="ipo_subscription", days_before=1, channel="sms", priority=10),
    R.Rule(0, "分红登记日前2日短信", event_kind="dividend", days_before=2, channel="sms", priority=10),
    R.Rule(0, "生日祝福短信", kind="birthday", channel="sms", priority=10),
)


@dataclass(frozen=True)
class PlanItem:
    client_id: int
    client_no: str
    client_name: str
    mobile_masked: str
    language: str
    channel: str
    subject: str
    event_id: int | None
    rule_id: int | None
    rule_name: str
    reason: str  # in the plan's language
    verdict: str  # send | opted_out | unsubscribed | no_number | quiet_hours | already_sent
    verdict_text: str
    message: str  # in the client's language
    mobile: str  # full number, for the sender only; never printed or logged
    not_before: datetime | None = None

    @property
    def will_send(self) -> bool:
        return self.verdict == "send"


def load_rules(s: Session) -> list[R.Rule]:
    """The active rules in the store; the shipped defaults when the store has none."""
    rows = list(s.scalars(select(CareRule).where(CareRule.active.is_(True)).order_by(CareRule.id)))
    if not rows and s.scalar(select(CareRule.id).limit(1)) is None:
        return list(DEFAULT_RULES)
    return [R.Rule(r.id, r.name, r.kind, r.event_kind, r.code, r.days_before, r.channel, r.template, r.priority)
            for r in rows]


def ensure_default_rules(s: Session) -> int:
    """Write the shipped rules into an empty rules table (so supervisors can edit them); returns rows added."""
    if s.scalar(select(CareRule.id).limit(1)) is not None:
        return 0
    for rule in DEFAULT_RULES:
        s.add(CareRule(name=rule.name, kind=rule.kind, event_kind=rule.event_kind, code=rule.code,
                       days_before=rule.days_before, channel=rule.channel, template=rule.template,
                       priority=rule.priority, active=True))
    return len(DEFAULT_RULES)


def _candidate_events(s: Session, day: date, rules: list[R.Rule], calendar: Calendar) -> list[CareEvent]:
    horizon = max((r.days_before for r in rules if r.kind == "event"), default=0) + 1
    until = calendar.add_trading_days(day, horizon)
    return list(s.scalars(select(CareEvent).where(CareEvent.event_date >= day, CareEvent.event_date <= until)
                          .order_by(CareEvent.event_date, CareEvent.id)))


def _facts(s: Session, client_ids: list[int]) -> tuple[dict[int, R.ClientFacts], dict[int, Client]]:
    if not client_ids:
        return {}, {}
    clients = {c.id: c for c in s.scalars(select(Client).where(Client.id.in_(client_ids)))}
    holdings: dict[int, set[str]] = {cid: set() for cid in client_ids}
    for cid, code in s.execute(
        select(FundAccount.client_id, Holding.code).join(Holding, Holding.fund_account_id == FundAccount.id)
        .where(FundAccount.client_id.in_(client_ids), Holding.quantity > 0)
    ):
        holdings[cid].add(code)
    topics = topics_of(s, client_ids)
    optouts = optouts_of(s, client_ids)
    facts = {
        cid: R.ClientFacts(
            cid, c.mobile, c.language or "zh-CN", c.status, c.birthday, optouts[cid],
            frozenset(tp for tp, on in topics[cid].items() if on), frozenset(holdings[cid]),
        )
        for cid, c in clients.items()
    }
    return facts, clients


def _reason(c: R.Candidate, lang: str) -> str:
    params = dict(c.reason_params)
    if "kind" in params:
        params["kind"] = t(f"care.kinds.{params['kind']}", lang)
    return t(f"care.reasons.{c.reason}", lang, **params) if params else t(f"care.reasons.{c.reason}", lang)


def plan_day(
    s: Session, day: date, calendar: Calendar, *, now: datetime | None = None, tz: ZoneInfo | None = None,
    quiet: R.QuietHours = R.QuietHours(), lang: str = "zh-CN",
) -> list[PlanItem]:
    """Everything that would go out on ``day``. With ``now`` (aware) on that same local day, quiet hours are
    judged at that moment; otherwise they are not (a plan made for another day)."""
    rules = load_rules(s)
    events = _candidate_events(s, day, rules, calendar)
    rule_events = [R.Event(e.id, e.kind, e.code, e.event_date, e.security_name) for e in events]
    fired = R.firing(rule_events, rules, day, calendar)
    ids: set[int] = {c.id for c in birthday_clients(s, day, day)} if any(r.kind == "birthday" for r in rules) else set()
    for ev, _rule, _due in fired:
        if R.EVENT_AUDIENCE.get(ev.kind) == "subscribers":
            topic = R.EVENT_TOPIC[ev.kind]
            ids.update(s.scalars(select(CareSubscription.client_id).where(
                CareSubscription.topic == topic, CareSubscription.enabled.is_(True))))
        else:
            ids.update(c.id for c in holders_of(s, ev.code))
    facts, clients = _facts(s, sorted(ids))
    client_list = [facts[cid] for cid in sorted(facts)]
    candidates = R.event_candidates(rule_events, rules, client_list, day, calendar)
    candidates += R.birthday_candidates(rules, client_list, day)

    pairs = [(c.client_id, c.subject) for c in candidates]
    already: set[tuple[int, str]] = set()
    for chunk in range(0, len(pairs), 500):
        part = pairs[chunk:chunk + 500]
        already.update((cid, subj) for cid, subj in s.execute(
            select(CareDelivery.client_id, CareDelivery.subject)
            .where(tuple_(CareDelivery.client_id, CareDelivery.subject).in_(part))))

    local_now = None
    if now is not None and tz is not None and now.astimezone(tz).date() == day:
        local_now = now.astimezone(tz)
    by_id = {e.id: e for e in events}
    items: list[PlanItem] = []
    for c in candidates:
        client = clients[c.client_id]
        decision = R.decide(c, facts[c.client_id], local_now, quiet, (c.client_id, c.subject) in already)
        cl_lang = client.language if client.language in ("zh-CN", "en") else "zh-CN"
        view = ClientView(client.name, client.gender, cl_lang)
        if c.event is not None:
            e = by_id[c.event.id]
            message = event_message(c.rule.template, view, EventView(
                e.kind, e.code, e.security_name or e.code, e.event_date, e.start_date, e.end_date, e.price, e.ratio),
                cl_lang)
        else:
            message = birthday_message(c.rule.template, view, cl_lang)
        verdict_params = {"at": decision.not_before.strftime("%H:%M")} if decision.not_before else {}
        items.append(PlanItem(
            c.client_id, client.client_no, client.name, mask_phone(client.mobile), cl_lang, c.channel, c.subject,
            c.event.id if c.event else None, c.rule.id or None, c.rule.name, _reason(c, lang), decision.verdict,
            t(f"care.verdicts.{decision.verdict}", lang, **verdict_params), message, client.mobile,
            decision.not_before,
        ))
    items.sort(key=lambda i: (i.subject, i.client_id))
    return items
