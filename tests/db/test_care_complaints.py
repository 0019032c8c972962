"""Complaint life cycle on the store: owner, due time, history, overdue list, call-back after closing,
reopening; regulatory call-backs and coverage; hand-over to the dialler."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from callcenter.services.care.callbacks import callbacks_of, due_callbacks, hand_over, record_callback_result
from callcenter.services.care.complaints import ComplaintError, ComplaintService
from callcenter.services.care.regulatory import build_regulatory_callbacks, coverage
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareCallback
from callcenter.store.models.dialer import Campaign, Lead
from tests.db.test_care_support import client_holding, utc
from tests.factories import make_group, make_staff


def test_complaint_life_cycle_with_satisfaction_callback(core, clock):
    group = make_group(core, "一组")
    boss = make_staff(core, "boss", "pw-123456789", "supervisor", supervises=[group])
    agent = make_staff(core, "agent1", "pw-123456789", "agent", group_id=group)
    cid = client_holding(core)
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Client, cid), "service_group_id", group))
    svc = ComplaintService.for_app(core)
    clock.now = utc(2026, 2, 12, 2)  # Thu 12 Feb 2026, 10:00 Shanghai, just before Spring Festival
    cmp_id = svc.open(cid, "fund_transfer", "  转账两小时未到账  ", channel="agent", call_ref="call-77", staff_id=agent)
    view = svc.get(cmp_id)
    assert (view.owner_id, view.status, view.text, view.call_ref) == (boss, "open", "转账两小时未到账", "call-77")
    assert view.due_at == utc(2026, 2, 13, 2) and not view.overdue
    with pytest.raises(ComplaintError):
        svc.move(cmp_id, "closed", staff_id=agent)  # no resolution yet
    svc.move(cmp_id, "in_progress", staff_id=agent, note="已联系银行")
    clock.now = utc(2026, 2, 13, 3)
    assert [c.id for c in svc.overdue()] == [cmp_id] and svc.overdue(owner_id=agent) == []
    svc.assign(cmp_id, agent, staff_id=boss)
    assert [c.id for c in svc.overdue(owner_id=agent)] == [cmp_id]
    svc.move(cmp_id, "resolved", staff_id=agent, resolution="银行系统延迟，款项已到账")
    assert svc.overdue() == []
    assert due_callbacks(core, date(2026, 3, 1)) == []
    svc.move(cmp_id, "closed", staff_id=boss)
    [cb] = callbacks_of(core, cid)
    # closed Fri 13 Feb: first trading day after it is Tue 24 Feb; due 3 trading days on, Thu 26 Feb
    assert (cb.purpose, cb.script_id, cb.complaint_id, cb.status) == ("satisfaction", "satisfaction_callback", cmp_id, "scheduled")
    assert (cb.not_before, cb.due_on) == (date(2026, 2, 24), date(2026, 2, 26))
    assert due_callbacks(core, date(2026, 2, 23)) == [] and [c.id for c in due_callbacks(core, date(2026, 2, 24))] == [cb.id]
    # the client is not satisfied: reopen (the call-back is cancelled), close again (scheduled again, once)
    svc.move(cmp_id, "in_progress", staff_id=boss, note="客户不满意")
    assert callbacks_of(core, cid)[0].status == "cancelled" and svc.get(cmp_id).closed_at is None
    svc.move(cmp_id, "closed", staff_id=boss, resolution="已补偿利息损失说明并道歉")
    assert [c.status for c in callbacks_of(core, cid)] == ["scheduled"]
    with pytest.raises(ComplaintError):
        svc.move(cmp_id, "resolved", staff_id=boss)
    hist = svc.history(cmp_id)
    assert [(h.action, h.from_status, h.to_status) for h in hist] == [
        ("opened", "", "open"), ("assigned", "", ""), ("status", "open", "in_progress"), ("assigned", "", ""),
        ("status", "in_progress", "resolved"), ("status", "resolved", "closed"), ("status", "closed", "in_progress"),
        ("status", "in_progress", "closed")]
    assert hist[2].note == "已联系银行" and hist[3].staff_id == boss
    record_callback_result(core, cb.id, "done", {"satisfaction": "4"}, staff_id=agent)
    assert callbacks_of(core, cid)[0].status == "done"


def test_complaint_from_ivr_without_group_and_bad_input(core):
    cid = client_holding(core)
    svc = ComplaintService.for_app(core)
    cmp_id = svc.open(cid, "other", "语音投诉", channel="ivr", call_ref="ivr-1")
    assert svc.get(cmp_id).owner_id is None and svc.get(cmp_id).channel == "ivr"
    with pytest.raises(ComplaintError):
        svc.open(cid, "weather", "x", channel="ivr")
    with pytest.raises(ComplaintError):
        svc.open(cid, "other", "   ", channel="ivr")
    with pytest.raises(ComplaintError):
        svc.move(9999, "closed", staff_id=None)
    assert [c.id for c in svc.list(status="open")] == [cmp_id]


def test_regulatory_callbacks_new_accounts_and_annual_sample(core, clock):
    olds = [client_holding(core, opened_on=date(2020, 1, 1)) for _ in range(25)]
    new = client_holding(core, opened_on=date(2026, 3, 2))
    too_old_new = client_holding(core, opened_on=date(2026, 1, 5))  # its month is over: not built, counted missed
    clock.now = utc(2026, 3, 10)
    first = build_regulatory_callbacks(core, date(2026, 3, 10))
    again = build_regulatory_callbacks(core, date(2026, 3, 10))
    # 25 existing clients (+ the client opened 5 Jan is new this year, not existing): 10 % a year -> 3;
    # by the end of March ceil(25 * 10% * 3/12) = 1
    assert (first.new_accounts, first.annual) == (1, 1) and (again.new_accounts, again.annual) == (0, 0)
    [cb_new] = callbacks_of(core, new)
    assert (cb_new.purpose, cb_new.not_before, cb_new.due_on) == ("regulatory_new", date(2026, 3, 3), date(2026, 4, 2))
    assert build_regulatory_callbacks(core, date(2026, 12, 1)).annual == 2  # 3 by December
    annual = [cb for c in olds for cb in callbacks_of(core, c)]
    assert len(annual) == 3 and len({cb.client_id for cb in annual}) == 3
    with pytest.raises(ValueError):
        record_callback_result(core, cb_new.id, "done", {"identity": True}, staff_id=None)  # topics missing
    clock.now = utc(2026, 3, 20)
    answers = {"identity": True, "account_changes": "无变更", "operator": "本人", "risk_disclosure": True,
               "discretionary_trading": "无"}
    record_callback_result(core, cb_new.id, "done", answers, staff_id=None)
    for cb in annual[:2]:
        record_callback_result(core, cb.id, "done", answers, staff_id=None)
    cov = coverage(core, 2026, date(2026, 12, 31))
    assert (cov.new_accounts, cov.new_called_in_time, cov.new_pending, cov.new_missed) == (2, 1, 0, 1)
    assert (cov.existing_clients, cov.existing_called, cov.existing_target, cov.annual_met) == (25, 2, 3, False)
    assert cov.new_rate == 0.5
    stored = run_in_transaction(core.sessions, lambda s: s.get(CareCallback, cb_new.id).answers)
    assert json.loads(stored)["operator"] == "本人"
    assert too_old_new not in [cb.client_id for cb in annual]


def test_hand_over_puts_due_callbacks_into_one_dialler_campaign_once(core, clock):
    a = client_holding(core, opened_on=date(2026, 3, 2))
    b = client_holding(core, opened_on=date(2026, 3, 3))
    clock.now = utc(2026, 3, 10)
    build_regulatory_callbacks(core, date(2026, 3, 10))
    assert hand_over(core, date(2026, 3, 10)) == {"regulatory_new": 2}
    assert hand_over(core, date(2026, 3, 10)) == {}
    campaigns = run_in_transaction(core.sessions, lambda s: list(s.scalars(select(Campaign))))
    assert [(c.kind, c.script_id, c.state) for c in campaigns] == [("callback", "regulatory_callback", "draft")]
    leads = run_in_transaction(core.sessions, lambda s: list(s.scalars(select(Lead).order_by(Lead.id))))
    assert [ld.client_id for ld in leads] == [a, b]
    assert {ld.extra["care_callback_id"] for ld in leads} == {cb.id for c in (a, b) for cb in callbacks_of(core, c)}
    assert all(cb.campaign_ref == f"campaign:{campaigns[0].id}" for c in (a, b) for cb in callbacks_of(core, c))
