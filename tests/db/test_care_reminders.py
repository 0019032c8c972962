"""Reminders end to end on the store: plan, send once, quiet hours, opt-outs, subscriptions, crash window."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from callcenter.services.care.dispatch import LEASE, apply_sms_status, run_daily_reminders
from callcenter.services.care.events import EventInput, add_event
from callcenter.services.care.planner import plan_day
from callcenter.services.care.sms import SimulatedSms
from callcenter.services.care.subscriptions import SubscriptionService
from callcenter.store.db import run_in_transaction
from callcenter.store.models.care import CareCallback, CareDelivery, CareRule
from tests.db.test_care_support import client_holding, mobile_of, utc


def deliveries(core):  # type: ignore[no-untyped-def]
    return run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareDelivery).order_by(CareDelivery.id))))


def test_rights_issue_before_spring_festival_reaches_holders_once(core):
    holder = client_holding(core, {"600000": 1000})
    other = client_holding(core, {"600036": 500})
    add_event(core.sessions, EventInput("rights_issue", "600000", date(2026, 2, 25), "浦发银行", ratio="10配3",
                                        price=Decimal("8.50")), utc(2026, 2, 1))
    # 3 trading days before Wed 25 Feb: Tue 24, Fri 13, Thu 12 (the exchange is closed 14-23 Feb)
    for quiet_day in (date(2026, 2, 11), date(2026, 2, 16), date(2026, 2, 23)):
        assert run_in_transaction(core.sessions, lambda s: plan_day(s, quiet_day, core.calendar)) == []
    plan = run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 2, 12), core.calendar))
    assert [(i.client_id, i.channel, i.verdict) for i in plan] == [(holder, "sms", "send")]
    assert "2026年2月25日" in plan[0].message and "10配3" in plan[0].message and "8.50" in plan[0].message
    assert "600000" in plan[0].reason and "2026-02-12" in plan[0].reason
    assert "*" in plan[0].mobile_masked and plan[0].mobile_masked not in plan[0].mobile

    sms = SimulatedSms()
    first = run_daily_reminders(core, date(2026, 2, 12), sms=sms, now=utc(2026, 2, 12))
    again = run_daily_reminders(core, date(2026, 2, 12), sms=sms, now=utc(2026, 2, 12, 5))
    later = run_daily_reminders(core, date(2026, 2, 13), sms=sms, now=utc(2026, 2, 13))  # catch-up window: still once
    assert (first.sent, again.sent, later.sent) == (1, 0, 0)
    assert again.skipped == {"already_sent": 1}
    assert [m.to for m in sms.outbox] == [mobile_of(core, holder)]
    assert sms.outbox[0].body.startswith("【客户服务中心】") and sms.outbox[0].body.endswith("回复TD退订")
    [row] = deliveries(core)
    assert (row.client_id, row.subject, row.status, row.attempts) == (holder, f"event:{row.event_id}", "sent", 1)
    assert other not in [r.client_id for r in deliveries(core)]


def test_missed_send_day_catches_up_on_next_trading_day_but_not_after_the_event(core):
    cid = client_holding(core, {"600000": 100})
    add_event(core.sessions, EventInput("dividend", "600000", date(2026, 10, 9)), utc(2026, 9, 1))
    # 2 trading days before Fri 9 Oct 2026 is Wed 30 Sep (1-7 Oct closed, Thu 8 Oct trades)
    assert run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 9, 29), core.calendar)) == []
    assert [i.reason for i in run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 9, 30), core.calendar))]
    late = run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 10, 8), core.calendar))
    assert [(i.client_id, i.verdict) for i in late] == [(cid, "send")] and "补发" in late[0].reason
    assert run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 10, 5), core.calendar)) == []
    assert run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 10, 9), core.calendar)) == []


def test_quiet_hours_hold_messages_until_the_window_opens(core):
    client_holding(core, {"600000": 100}, birthday=date(1980, 3, 4))
    sms = SimulatedSms()
    early = run_daily_reminders(core, date(2026, 3, 4), sms=sms, now=utc(2026, 3, 3, 23, 30))  # 07:30 Shanghai
    assert early.skipped == {"quiet_hours": 1} and sms.outbox == [] and deliveries(core) == []
    plan = run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 3, 4), core.calendar,
                                                                now=utc(2026, 3, 3, 23, 30), tz=core.settings.tz))
    assert plan[0].not_before is not None and plan[0].not_before.hour == 9 and "09:00" in plan[0].verdict_text
    night = run_daily_reminders(core, date(2026, 3, 4), sms=sms, now=utc(2026, 3, 4, 13, 0))  # 21:00
    assert night.skipped == {"quiet_hours": 1}
    ok = run_daily_reminders(core, date(2026, 3, 4), sms=sms, now=utc(2026, 3, 4, 1, 0))  # 09:00
    assert ok.sent == 1 and "生日快乐" in sms.outbox[0].body


def test_opt_outs_and_subscriptions_are_respected(core):
    a = client_holding(core, {"600000": 100})
    b = client_holding(core, {"600000": 100})
    c = client_holding(core, {"600000": 100})
    d = client_holding(core, {"600000": 100}, status="closed")
    subs = SubscriptionService(core.sessions, core.clock)
    subs.opt_out(a, "sms", source="agent")
    subs.set_topic(b, "corporate_actions", False, source="ivr")
    add_event(core.sessions, EventInput("placing", "600000", date(2026, 3, 10)), utc(2026, 3, 1))
    plan = run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 3, 6), core.calendar))
    assert {i.client_id: i.verdict for i in plan} == {a: "opted_out", b: "unsubscribed", c: "send"}
    assert d not in {i.client_id for i in plan}
    sms = SimulatedSms()
    report = run_daily_reminders(core, date(2026, 3, 6), sms=sms, now=utc(2026, 3, 6))
    assert report.sent == 1 and report.skipped == {"opted_out": 1, "unsubscribed": 1}
    assert [m.to for m in sms.outbox] == [mobile_of(core, c)]
    # a client texting TD is opted out of SMS from then on
    assert subs.handle_inbound_sms(mobile_of(core, c), " td ") is not None
    assert subs.get(c).opted_out == frozenset({"sms"})
    assert subs.handle_inbound_sms(mobile_of(core, c), "hello") is None


def test_new_share_alerts_go_to_subscribers_only(core):
    a = client_holding(core)
    b = client_holding(core)
    SubscriptionService(core.sessions, core.clock).set_topic(a, "ipo", True, source="agent")
    add_event(core.sessions, EventInput("ipo_subscription", "732999", date(2026, 3, 10), "某某科技"), utc(2026, 3, 1))
    plan = run_in_transaction(core.sessions, lambda s: plan_day(s, date(2026, 3, 9), core.calendar))
    assert [(i.client_id, i.verdict) for i in plan] == [(a, "send")] and b != a
    assert "732999" in plan[0].message


def test_agent_call_rule_queues_a_reminder_callback_and_best_rule_wins(core):
    cid = client_holding(core, {"580001": 10000})

    def rules(s):  # type: ignore[no-untyped-def]
        s.add(CareRule(name="warrant call", kind="event", event_kind="warrant_last_trading", days_before=2,
                       channel="agent_call", priority=1, active=True))
        s.add(CareRule(name="warrant sms", kind="event", event_kind="warrant_last_trading", days_before=2,
                       channel="sms", priority=5, active=True))

    run_in_transaction(core.sessions, rules)
    add_event(core.sessions, EventInput("warrant_last_trading", "580001", date(2026, 3, 10)), utc(2026, 3, 1))
    report = run_daily_reminders(core, date(2026, 3, 6), sms=SimulatedSms(), now=utc(2026, 3, 6))
    assert (report.agent_callbacks, report.sent) == (1, 0)
    [row] = deliveries(core)
    assert (row.channel, row.status) == ("agent_call", "queued")
    [cb] = run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareCallback))))
    assert (cb.client_id, cb.purpose, cb.script_id, cb.due_on) == (cid, "reminder", "reminder", date(2026, 3, 6))


def test_failed_sms_is_recorded_and_delivery_reports_update_status(core):
    a = client_holding(core, birthday=date(1990, 5, 6))
    b = client_holding(core, birthday=date(1991, 5, 6))
    sms = SimulatedSms(fail_numbers={mobile_of(core, b)})
    report = run_daily_reminders(core, date(2026, 5, 6), sms=sms, now=utc(2026, 5, 6))
    assert (report.sent, report.failed) == (1, 1)
    rows = {r.client_id: r for r in deliveries(core)}
    assert rows[b].status == "failed" and "refusal" in rows[b].detail
    assert apply_sms_status(core, rows[a].provider_ref, "delivered")
    assert not apply_sms_status(core, "SM-unknown", "delivered")
    assert {r.client_id: r.status for r in deliveries(core)}[a] == "delivered"
    apply_sms_status(core, rows[a].provider_ref, "sent")  # late, out of order: ignored
    assert {r.client_id: r.status for r in deliveries(core)}[a] == "delivered"


def test_a_run_that_died_after_claiming_is_taken_over_after_the_lease(core):
    cid = client_holding(core, birthday=date(1985, 7, 1))

    class Crash(Exception):
        pass

    class DyingSms:
        def send(self, to, body, *, reference, kind=""):  # type: ignore[no-untyped-def]
            raise Crash

    try:
        run_daily_reminders(core, date(2026, 7, 1), sms=DyingSms(), now=utc(2026, 7, 1))
    except Crash:
        pass
    [row] = deliveries(core)
    assert row.status == "pending"
    sms = SimulatedSms()
    soon = run_daily_reminders(core, date(2026, 7, 1), sms=sms, now=utc(2026, 7, 1) + LEASE / 2)
    assert soon.sent == 0 and sms.outbox == []  # maybe still being sent by the other process
    late = run_daily_reminders(core, date(2026, 7, 1), sms=sms, now=utc(2026, 7, 1) + LEASE + timedelta(seconds=1))
    assert late.sent == 1 and [m.to for m in sms.outbox] == [mobile_of(core, cid)]
    assert run_in_transaction(core.sessions, lambda s: s.scalar(select(func.count()).select_from(CareDelivery))) == 1
