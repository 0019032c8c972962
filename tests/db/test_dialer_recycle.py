"""Recycling: exhausted leads get another pass when the campaign allows it; never DNC numbers, never endlessly."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from callcenter.bootstrap import App
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.campaigns import DialerError, add_dnc, create_campaign, recycle_leads, stop_campaign
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.dialer import Lead

PHONES = ["+8613912340001", "+8613912340002", "+8613912340003", "+8613912340004"]


def _exhaust(core: App, cid: int, phones: list[str]) -> None:
    run_in_transaction(core.sessions, lambda s: s.execute(
        update(Lead).where(Lead.campaign_id == cid, Lead.phone.in_(phones)).values(status="exhausted", attempts=3)))


def _statuses(core: App, cid: int) -> dict[str, tuple[str, int]]:
    with transaction(core.sessions) as s:
        return {lead.phone: (lead.status, lead.attempts) for lead in s.scalars(select(Lead).where(Lead.campaign_id == cid))}


def test_recycling_brings_exhausted_leads_back_once_per_pass(core: App) -> None:
    cid = create_campaign(core, name="回收测试", kind="cold_leads", script_id="cold_call", recycle=True, max_attempts=3)
    add_leads(core, cid, [LeadRow(row=i + 2, phone=p) for i, p in enumerate(PHONES)])
    _exhaust(core, cid, PHONES[:3])
    run_in_transaction(core.sessions, lambda s: s.execute(
        update(Lead).where(Lead.phone == PHONES[3]).values(status="done")))
    add_dnc(core, PHONES[2], reason="客户要求")
    assert recycle_leads(core, cid, max_passes=2) == 2
    st = _statuses(core, cid)
    assert st[PHONES[0]] == ("retry", 0) and st[PHONES[1]] == ("retry", 0)
    assert st[PHONES[2]][0] == "exhausted"  # on the do-not-call list
    assert st[PHONES[3]][0] == "done"  # contacted: never recycled
    _exhaust(core, cid, PHONES[:2])
    assert recycle_leads(core, cid, max_passes=2) == 2
    _exhaust(core, cid, PHONES[:2])
    assert recycle_leads(core, cid, max_passes=2) == 0  # two passes were the limit


def test_recycling_needs_a_campaign_that_allows_it(core: App) -> None:
    cid = create_campaign(core, name="不回收", kind="cold_leads", script_id="cold_call")
    with pytest.raises(DialerError):
        recycle_leads(core, cid)
    cid2 = create_campaign(core, name="已结束", kind="cold_leads", script_id="cold_call", recycle=True)
    stop_campaign(core, cid2)
    with pytest.raises(DialerError):
        recycle_leads(core, cid2)


def test_no_leads_into_a_finished_campaign_whether_from_a_file_or_from_code(core: App) -> None:
    cid = create_campaign(core, name="已结束活动", kind="cold_leads", script_id="cold_call")
    stop_campaign(core, cid)
    with pytest.raises(ValueError, match="finished"):
        add_leads(core, cid, [LeadRow(row=2, phone=PHONES[0])])
    assert _statuses(core, cid) == {}
