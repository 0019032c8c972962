"""Issue 13: on a live call every variable a script uses is filled from the call's own data — the agent's group,
the client's surname in pinyin, a lead's branch, a reminder's care event — so nothing renders as a gap."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from callcenter.bootstrap import App
from callcenter.services.desk import script_context
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, ServiceGroup, Staff
from callcenter.store.models.care import CareCallback, CareEvent
from callcenter.store.models.dialer import Campaign, Lead
from tests.factories import make_client, make_group, make_staff

TZ = ZoneInfo("Asia/Shanghai")


def _campaign(s, kind: str) -> Campaign:
    now = datetime.now(timezone.utc)
    c = Campaign(name=f"c-{kind}", kind=kind, script_id="win_back", created_at=now, updated_at=now)
    s.add(c)
    s.flush()
    return c


def test_a_client_call_fills_the_agents_group_and_the_surname_in_pinyin(core: App) -> None:
    group = make_group(core, "第七服务小组")
    agent = make_staff(core, "agent_ctx", "pw-pw-pw-1", "agent", group_id=group)
    client_id, _ = make_client(core, accounts=[(100_00, 0)], group_id=group)

    def work(s):
        s.get(Client, client_id).name = "单雄信"
        s.get(ServiceGroup, group).branch = "人民路营业部"
        return script_context(s, s.get(Client, client_id), s.get(Staff, agent), _campaign(s, "former_clients"),
                              None, core.clock(), TZ)

    ctx = run_in_transaction(core.sessions, work)
    assert ctx.agent.group == "第七服务小组"
    assert (ctx.client.surname, ctx.client.surname_latin) == ("单", "Shan")
    assert ctx.client.service_group == "第七服务小组"


def test_a_lead_without_a_client_record_gets_the_agents_branch_and_a_latin_surname(core: App) -> None:
    group = make_group(core, "第八服务小组")
    agent = make_staff(core, "agent_ctx2", "pw-pw-pw-1", "agent", group_id=group)

    def work(s):
        s.get(ServiceGroup, group).branch = "解放路营业部"
        camp = _campaign(s, "cold_leads")
        lead = Lead(campaign_id=camp.id, phone="+8613900001111", name="欧阳娜", extra={"gender": "F"}, created_at=core.clock(),
                    updated_at=core.clock())
        s.add(lead)
        s.flush()
        return script_context(s, None, s.get(Staff, agent), camp, lead, core.clock(), TZ)

    ctx = run_in_transaction(core.sessions, work)
    assert (ctx.client.surname, ctx.client.surname_latin, ctx.client.honorific_en) == ("欧阳", "Ouyang", "Ms")
    assert ctx.client.branch == "解放路营业部" and ctx.agent.group == "第八服务小组"


def test_a_reminder_call_carries_its_care_event(core: App) -> None:
    agent = make_staff(core, "agent_ctx3", "pw-pw-pw-1", "agent")
    client_id, _ = make_client(core, accounts=[(100_00, 0)])

    def work(s):
        ev = CareEvent(kind="rights_issue", code="600036", security_name="招商银行", event_date=date(2026, 12, 10),
                       start_date=date(2026, 12, 11), end_date=date(2026, 12, 17), price=Decimal("8.8800"), ratio="10配3",
                       created_at=core.clock(), updated_at=core.clock())
        s.add(ev)
        s.flush()
        cb = CareCallback(dedupe="ctx-1", client_id=client_id, purpose="reminder", script_id="reminder",
                          event_id=ev.id, not_before=date(2026, 12, 1), due_on=date(2026, 12, 9),
                          created_at=core.clock())
        s.add(cb)
        s.flush()
        camp = _campaign(s, "reminder")
        lead = Lead(campaign_id=camp.id, phone="+8613900002222", name="x", client_id=client_id,
                    extra={"care_callback_id": cb.id}, created_at=core.clock(), updated_at=core.clock())
        s.add(lead)
        s.flush()
        return script_context(s, s.get(Client, client_id), s.get(Staff, agent), camp, lead, core.clock(), TZ)

    ctx = run_in_transaction(core.sessions, work)
    assert ctx.event is not None
    assert (ctx.event.kind, ctx.event.security_code, ctx.event.ratio, ctx.event.price) == (
        "rights_issue", "600036", "10配3", Decimal("8.88"))
    assert (ctx.event.start_date, ctx.event.end_date) == (date(2026, 12, 11), date(2026, 12, 17))
