"""预约服务 on the store (SQLite and PostgreSQL): the slot rules under the client's and the slot's locks, capacity
under concurrent bookings, idempotent keys, cancel, who may see what, SMS reminders once; booked from the
hotline (text phone) and listed there; and the order-confirmation record every hotline order leaves."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from callcenter.bootstrap import App
from callcenter.domain.access import Actor
from callcenter.domain.appointments import AppointmentError
from callcenter.adapters.ivr.textphone import TextPhone
from callcenter.services.appointments import BookAppointment
from callcenter.services.auth import hash_secret
from callcenter.services.care.sms import SimulatedSms
from callcenter.services.ivr.flow import load_flow
from callcenter.store.db import transaction
from callcenter.store.models import (Appointment, AppointmentSlot, FundAccount, IvrSession, Order, OrderConfirmation,
                                     ServiceGroup)
from callcenter.store.models.recordings import Recording
from tests.factories import make_client

pytestmark = pytest.mark.db
SH = ZoneInfo("Asia/Shanghai")
PIN, TPWD, CALLER = "246813", "802413", "+8613911112222"


def group(core: App, name: str) -> int:
    with transaction(core.sessions) as s:
        g = ServiceGroup(name=name)
        s.add(g)
        s.flush()
        gid = g.id
        s.commit()
    return gid


def local(hh: int, mm: int = 0, day: int = 25) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=SH)  # the test clock: Wednesday 25 November, 10:30 local


def book(core: App, client_id: int, kind: str, start: datetime, key: str, actor: Actor | None = None):  # type: ignore[no-untyped-def]
    return core.appointments.book(BookAppointment(key, client_id, kind, start, "api",
                                                  actor or Actor.client(client_id)))


def refusal(core: App, *args: object) -> str:
    with pytest.raises(AppointmentError) as exc:
        book(core, *args)  # type: ignore[arg-type]
    return exc.value.rule.value


def test_capacity_keys_cancel_and_visibility(core: App) -> None:
    g1, g2 = group(core, "一组"), group(core, "二组")
    a, _ = make_client(core, accounts=[(0, 0)], group_id=g1)
    b, _ = make_client(core, accounts=[(0, 0)], group_id=g1)
    loner, _ = make_client(core, accounts=[(0, 0)])
    # 10:30 now: 11:00 is too soon, the morning ends at 11:30, so the first free slot is 13:00
    assert core.appointments.free_slots("analyst_callback")[0] == local(13)
    first = book(core, a, "analyst_callback", local(13), "k1")
    assert (first.status, first.replayed, first.service_group_id) == ("booked", False, g1)
    again = book(core, a, "analyst_callback", local(13), "k1")
    assert again.id == first.id and again.replayed
    assert refusal(core, b, "analyst_callback", local(13), "k2") == "slot_full"  # one analyst a slot
    assert core.appointments.free_slots("analyst_callback")[0] == local(13, 30)
    assert refusal(core, a, "analyst_callback", local(14), "k3") == "already_booked"
    assert refusal(core, loner, "group_callback", local(14), "k4") == "no_service_group"
    assert refusal(core, a, "group_callback", local(10, 45), "k5") == "off_grid"
    assert refusal(core, a, "group_callback", datetime(2026, 11, 28, 10, tzinfo=SH), "k6") == "not_trading_day"
    # who sees what: an agent without the client's call or group sees nothing; supervisors their groups
    assert refusal(core, a, "branch_visit", local(14), "k7", Actor.staff("agent", 999)) == "unknown_client"
    day = local(0).date()
    assert [x.id for x in core.appointments.listing(Actor.staff("supervisor", 1, {g1}), day, day)] == [first.id]
    assert core.appointments.listing(Actor.staff("supervisor", 1, {g2}), day, day) == []
    assert core.appointments.listing(Actor.client(a), day, day) == []
    # the client cancels; the slot has room again for b
    with pytest.raises(AppointmentError):
        core.appointments.cancel(first.id, Actor.client(b))  # not theirs: "no such appointment"
    assert core.appointments.cancel(first.id, Actor.client(a)).status == "cancelled"
    assert book(core, b, "analyst_callback", local(13), "k2").status == "booked"
    with transaction(core.sessions) as s:
        slot = s.get(AppointmentSlot, ("analyst_callback", local(13).astimezone(timezone.utc)))
        assert slot is not None and slot.booked == 1
    assert [x.kind for x in core.appointments.of_client(b, Actor.client(b))] == ["analyst_callback"]


def test_concurrent_bookings_never_overfill_a_slot(core: App) -> None:
    g = group(core, "并发组")
    clients = [make_client(core, accounts=[(0, 0)], group_id=g)[0] for _ in range(12)]

    def one(cid: int) -> str:
        try:
            book(core, cid, "group_callback", local(14), f"c{cid}")
            return "booked"
        except AppointmentError as exc:
            return exc.rule.value

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one, clients))
    assert results.count("booked") == 3 and results.count("slot_full") == 9  # capacity 3 a slot
    with transaction(core.sessions) as s:
        rows = s.scalars(select(Appointment).where(Appointment.status == "booked")).all()
        slot = s.get(AppointmentSlot, ("group_callback", local(14).astimezone(timezone.utc)))
        assert len(rows) == 3 and slot is not None and slot.booked == 3


def test_reminder_sms_once_before_the_slot(core: App) -> None:
    g = group(core, "提醒组")
    cid, _ = make_client(core, accounts=[(0, 0)], group_id=g)
    book(core, cid, "branch_visit", local(13), "r1")
    sms = SimulatedSms()
    assert core.appointments.send_reminders(sms)["sent"] == 0  # 10:30: the slot is 150 minutes away
    later = local(11, 5).astimezone(timezone.utc)
    assert core.appointments.send_reminders(sms, now=later)["sent"] == 1
    assert core.appointments.send_reminders(sms, now=later + timedelta(minutes=5))["sent"] == 0
    (msg,) = sms.outbox
    assert "营业部临柜办理" in msg.body and "11月25日 星期三 13:00" in msg.body


def test_booked_and_listed_on_the_hotline(core: App) -> None:
    g = group(core, "热线组")
    cid, (main,) = make_client(core, accounts=[(0, 0)], group_id=g, pin=PIN)
    flow = load_flow("hotline")
    out = "\n".join(TextPhone(flow, core.ivr, caller=CALLER, call_id="appt-1", echo=lambda _: None)
                    .run(f"1{main}#{PIN}#8111").lines)
    assert "预约服务小组回电请按1" in out and "11月25日 星期三 13:00" in out and "预约成功" in out, out
    with transaction(core.sessions) as s:
        row = s.scalars(select(Appointment)).one()
        sess = s.scalars(select(IvrSession).where(IvrSession.call_id == "appt-1")).one()
        assert (row.client_id, row.kind, row.channel, row.ivr_session_id) == (cid, "group_callback", "text", sess.id)
        assert row.slot_start == local(13).astimezone(timezone.utc)
    out = "\n".join(TextPhone(flow, core.ivr, caller=CALLER, call_id="appt-2", echo=lambda _: None)
                    .run(f"1{main}#{PIN}#84").lines)
    assert "您的预约" in out and "服务小组回电" in out and "13:00" in out


def test_every_hotline_order_leaves_its_confirmation_record(core: App) -> None:
    cid, (main,) = make_client(core, accounts=[(1_000_000_00, 0)], pin=PIN)
    with transaction(core.sessions) as s:
        s.execute(update(FundAccount).where(FundAccount.account_no == main).values(trading_pwd_hash=hash_secret(TPWD)))
        s.commit()
    # a recording of the IVR session exists (the telephony made one): the record links it, it is kept as "order"
    sess_id = core.ivr.record_event("conf-1", "start", {"lang": "zh-CN", "caller": CALLER})
    rec_id = core.recordings.start("conf-1", client_id=cid, ivr_session_id=sess_id)
    price = core.orders.quote("600000").limit_up
    steps = f"1{main}#{PIN}#62600000#1{price.replace('.', '*')}#1000#1{TPWD}#"
    flow = load_flow("hotline")
    TextPhone(flow, core.ivr, caller=CALLER, call_id="conf-1", echo=lambda _: None).run(steps)
    TextPhone(flow, core.ivr, caller=CALLER, call_id="conf-1", echo=lambda _: None).run(steps)  # replayed: one
    # another call with no recording: its record stands alone
    TextPhone(flow, core.ivr, caller=CALLER, call_id="conf-2", echo=lambda _: None).run(steps)
    with transaction(core.sessions) as s:
        orders = s.scalars(select(Order).order_by(Order.id)).all()
        confs = s.scalars(select(OrderConfirmation).order_by(OrderConfirmation.id)).all()
        assert [c.order_id for c in confs] == [o.id for o in orders] and len(orders) == 2
        first = confs[0]
        assert (first.call_id, first.ivr_session_id, first.recording_id, first.channel) == ("conf-1", sess_id,
                                                                                              rec_id, "text")
        assert (first.code, first.side, first.kind, first.quantity, first.price_li) == (
            "600000", "buy", "limit", 1000, orders[0].price_li)
        assert first.caller_masked != CALLER and first.caller_masked.endswith(CALLER[-4:])
        assert "买入 浦发银行（600000）" in first.heard and price in first.heard and first.frozen_fen > 0
        assert first.retention_class == "order" and first.keep_until.year == first.confirmed_at.year + 3
        assert confs[1].recording_id is None and confs[1].call_id == "conf-2"
        assert s.get(Recording, rec_id).retention_class == "order"
        # no secret in the record
        assert PIN not in first.heard and TPWD not in first.heard


def test_a_supervisor_closes_a_slot_and_opens_another_wider_audited(core: App) -> None:
    """A slot's own capacity (the supervisor's grid): 0 closes it (no new booking, not offered), a larger one
    takes more than the setting allows, empty gives the default back; each change audited with before/after;
    appointments booked before a capacity is lowered stay booked; agents may not change it."""
    from callcenter.store.models.core import AuditLog

    g1 = group(core, "一组")
    a, _ = make_client(core, accounts=[(0, 0)], group_id=g1)
    b, _ = make_client(core, accounts=[(0, 0)], group_id=g1)
    c, _ = make_client(core, accounts=[(0, 0)], group_id=g1)
    from tests.factories import make_staff

    sup = Actor.staff("supervisor", make_staff(core, "slot-sup", "pw-slot-sup-123", "supervisor", group_id=g1),
                      frozenset({g1}))
    grid = core.appointments.slot_grid("analyst_callback", local(13).date())
    assert [(g.start, g.booked, g.capacity, g.own) for g in grid[:2]] == [
        (local(9), 0, 1, False), (local(9, 30), 0, 1, False)]  # the setting's capacity: one analyst a slot
    closed = core.appointments.set_capacity(sup, "analyst_callback", local(13), 0, "分析师外出")
    assert (closed.capacity, closed.own) == (0, True)
    assert local(13) not in core.appointments.free_slots("analyst_callback", limit=3)
    assert refusal(core, a, "analyst_callback", local(13), "k1") == "slot_full"
    core.appointments.set_capacity(sup, "analyst_callback", local(13, 30), 2)
    book(core, a, "analyst_callback", local(13, 30), "k2")
    book(core, b, "analyst_callback", local(13, 30), "k3")  # two where the setting allows one
    assert refusal(core, c, "analyst_callback", local(13, 30), "k4") == "slot_full"
    lowered = core.appointments.set_capacity(sup, "analyst_callback", local(13, 30), 1)
    assert (lowered.booked, lowered.capacity) == (2, 1)  # both stay booked; nobody new
    back = core.appointments.set_capacity(sup, "analyst_callback", local(13), None)
    assert (back.capacity, back.own) == (1, False)
    assert core.appointments.free_slots("analyst_callback", limit=1) == [local(13)]
    with pytest.raises(AppointmentError) as exc:
        core.appointments.set_capacity(Actor.staff("agent", 2, frozenset({g1})), "analyst_callback", local(14), 3)
    assert exc.value.rule.value == "not_allowed"
    with pytest.raises(AppointmentError) as exc:
        core.appointments.set_capacity(sup, "analyst_callback", local(13, 10), 3)
    assert exc.value.rule.value == "off_grid"
    with transaction(core.sessions) as s:
        rows = [json.loads(r.detail) for r in s.scalars(select(AuditLog).where(
            AuditLog.action == "appointment_capacity").order_by(AuditLog.id))]
    assert [(r["before"]["capacity"], r["after"]["capacity"]) for r in rows] == [(None, 0), (None, 2), (2, 1), (0, None)]
    assert rows[0]["reason"] == "分析师外出"
