"""Issue 13: the supervisor's campaign form carries every campaign setting, the script defaults to the kind's
titled script, leads come from a client segment with a live count, a schedule in the past is refused with a
sentence, and a running campaign outside its calling hours says when it starts."""

from __future__ import annotations

import html
import re
from datetime import datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.services.dialer.campaigns import calling_hours_hint, campaign_action, create_campaign
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.dialer import Campaign, Lead
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db


def test_the_form_sets_every_campaign_setting(core: App) -> None:
    build(core)
    web = TestClient(create_app(core), raise_server_exceptions=False)
    csrf = page_login(web, "sup1")
    page = web.get("/supervisor/campaigns").text
    assert not [o for o in re.findall(r'name="script_id">(.*?)</select>', page, re.S)[0].split("</option>")
                if re.search(r">\s*[a-z_]+\s*$", o)], "script options show titles, not raw ids"
    r = web.post("/supervisor/campaigns", data={
        "csrf": csrf, "name": "休眠唤醒", "kind": "dormant", "script_id": "dormant", "dial_mode": "ratio",
        "ratio": "2.5", "target_abandon_pct": "2.0", "caller_id": "+8621955000", "priority": "7",
        "amd_policy": "machine", "leave_message": "1", "recycle": "1", "window_start": "09:30",
        "window_end": "17:00", "days": "trading", "max_attempts": "4"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].rsplit("/", 1)[1])
    c = run_in_transaction(core.sessions, lambda s: s.get(Campaign, cid))
    assert (c.dial_mode, c.ratio, c.target_abandon, c.caller_id, c.priority) == ("ratio", 2.5, 0.02, "+8621955000", 7)
    assert (c.amd_policy, c.leave_message, c.recycle, c.max_attempts) == ("machine", True, True, 4)
    assert (c.window_start, c.window_end, c.days) == (time(9, 30), time(17, 0), "trading")
    # above the regulatory cap: refused by the form's bounds, nothing changed
    r = web.post(f"/supervisor/campaigns/{cid}", data={
        "csrf": csrf, "name": "休眠唤醒", "kind": "dormant", "script_id": "dormant", "target_abandon_pct": "5"})
    assert r.status_code == 422
    assert run_in_transaction(core.sessions, lambda s: s.get(Campaign, cid).target_abandon) == 0.02


def test_leads_from_a_segment_with_a_live_count(core: App) -> None:
    world: World = build(core)
    cid = create_campaign(core, name="老客户", kind="former_clients", script_id="win_back", group_ids=[world.g1])
    today = core.clock().date()

    def close_two(s) -> int:  # type: ignore[no-untyped-def]
        clients = s.execute(select(Client).order_by(Client.id).limit(2)).scalars().all()
        for c in clients:
            c.status, c.closed_on = "closed", today - timedelta(days=40)
        return len(clients)

    closed = run_in_transaction(core.sessions, close_two)
    web = TestClient(create_app(core), raise_server_exceptions=False)
    csrf = page_login(web, "sup1")
    count = web.get("/supervisor/segments/count", params={"segment": "former", "months": 12})
    assert count.status_code == 200 and count.json() == {"count": closed}
    assert web.get("/supervisor/segments/count", params={"segment": "former", "months": 1}).json() == {"count": 0}
    bad = web.get("/supervisor/segments/count", params={"segment": "holders", "code": "abc"})
    assert bad.status_code == 422 and "6 位数字" in bad.text
    r = web.post(f"/supervisor/campaigns/{cid}/segment", data={"csrf": csrf, "segment": "former", "months": "12"})
    assert r.status_code == 200
    assert f"已添加 {closed} 条名单" in html.unescape(r.text)
    leads = run_in_transaction(core.sessions, lambda s: s.scalar(
        select(func.count()).select_from(Lead).where(Lead.campaign_id == cid)))
    assert leads == closed


def test_a_schedule_in_the_past_is_refused_with_a_sentence(core: App) -> None:
    from callcenter.parts.scheduler import CampaignScheduler
    from callcenter.services.dialer.campaigns import DialerError

    world = build(core)
    cid = create_campaign(core, name="定时", kind="former_clients", script_id="win_back", group_ids=[world.g1])
    sched = CampaignScheduler(core)
    with pytest.raises(DialerError) as refused:
        sched.schedule_once(cid, "campaign_start", core.clock() - timedelta(minutes=5))
    assert refused.value.code == "schedule_in_past" and "已经过去" in refused.value.sentence("zh-CN")
    assert run_in_transaction(core.sessions, lambda s: s.get(Campaign, cid).state) == "draft"


def test_a_running_campaign_outside_its_hours_says_when_it_starts(core: App) -> None:
    world = build(core)
    now_local = core.clock().astimezone(core.settings.tz)
    # a window that opened and closed before now today (or that is still to come), so now is outside it
    start, end = (time(0, 0), time(0, 1)) if now_local.time() > time(0, 2) else (time(23, 0), time(23, 59))
    cid = create_campaign(core, name="夜间", kind="former_clients", script_id="win_back", group_ids=[world.g1],
                          window_start=start.strftime("%H:%M"), window_end=end.strftime("%H:%M"), days="every")
    campaign_action(core, cid, "start")
    c = run_in_transaction(core.sessions, lambda s: s.get(Campaign, cid))
    opens = calling_hours_hint(core, c)
    assert opens is not None and opens.time() == start and opens > core.clock()
    web = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(web, "sup1")
    page = html.unescape(web.get(f"/supervisor/campaigns/{cid}").text)
    assert f"当前不在呼叫时段，将于 {opens.strftime('%m-%d %H:%M')} 开始拨打" in page
