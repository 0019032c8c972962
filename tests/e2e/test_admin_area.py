"""The administrators' area (/admin) through the real app: staff, lockouts, DNC (with a CSV import and its
per-row report), bulletins, dispositions and pause codes, and the audit log with its filters and CSV; every
change audit-logged with who, what, when and before/after. Only administrators get in."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services import admin
from callcenter.services.staff_sessions import staff_principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, AuthThrottle, Bulletin, DeskCode, Staff
from callcenter.store.models.dialer import DncEntry
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, World, build, page_login

import pytest


@pytest.fixture
def world(core: App) -> World:
    return build(core)


def _client(core: App) -> TestClient:
    return TestClient(create_app(core), raise_server_exceptions=True)


def _audit(core: App, action: str) -> list[dict[str, Any]]:
    rows = run_in_transaction(core.sessions, lambda s: [
        (e.staff_id, e.at, e.detail) for e in s.execute(select(AuditLog).where(AuditLog.action == action)
                                                        .order_by(AuditLog.id)).scalars()])
    return [{"staff_id": sid, "at": at, **json.loads(d)} for sid, at, d in rows]


def test_only_administrators_get_in(core: App, world: World) -> None:
    for user in ("ag1", "sup1"):
        c = _client(core)
        page_login(c, user)
        for path in ("/admin", "/admin/staff", "/admin/audit", "/admin/audit.csv", "/admin/dnc"):
            assert c.get(path).status_code == 403, (user, path)
    anonymous = _client(core).get("/admin/staff", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    c = _client(core)
    page_login(c, "adm")
    home = c.get("/admin")
    assert home.status_code == 200 and "系统管理" in home.text and 'href="/admin"' in home.text


def test_staff_created_changed_disabled_and_reset_each_audited(core: App, world: World) -> None:
    c = _client(core)
    csrf = page_login(c, "adm")
    r = c.post("/admin/staff", data={"csrf": csrf, "username": "ag9", "display_name": "新坐席", "role": "agent",
                                      "password": "short", "group_id": str(world.g1)})
    assert r.status_code == 422 and "密码至少需要 10 个字符" in r.text
    r = c.post("/admin/staff", data={"csrf": csrf, "username": "ag9", "display_name": "新坐席", "role": "agent",
                                      "password": "long-enough-1", "group_id": str(world.g1), "extension": "8009"})
    assert r.status_code == 200 and "已创建员工 新坐席" in r.text
    ag9 = run_in_transaction(core.sessions, lambda s: s.execute(select(Staff).where(Staff.username == "ag9")).scalar_one().id)
    # the new agent logs in; the admin moves them to supervisor: their session ends
    agent = _client(core)
    PASSWORDS["ag9"] = "long-enough-1"
    try:
        page_login(agent, "ag9")
    finally:
        del PASSWORDS["ag9"]
    r = c.post(f"/admin/staff/{ag9}", data={"csrf": csrf, "display_name": "新坐席", "role": "supervisor",
                                            "group_id": str(world.g1), "extension": "8010"}, follow_redirects=False)
    assert r.status_code == 303
    assert agent.get("/agent", follow_redirects=False).status_code == 303  # sent to the login page again
    upd = _audit(core, "staff_update")[-1]
    assert upd["by"] == "adm" and upd["staff_id"] == world.staff["adm"] and upd["subject"] == "ag9"
    assert upd["before"] == {"role": "agent", "extension": "8009"}
    assert upd["after"] == {"role": "supervisor", "extension": "8010"}
    # reset: a new password shown once, the old one no longer works
    r = c.post(f"/admin/staff/{ag9}/password", data={"csrf": csrf})
    assert "只显示这一次" in r.text
    assert _audit(core, "staff_password_reset")[-1]["after"]["password"] == "changed"
    assert "long-enough-1" not in json.dumps(_audit(core, "staff_password_reset"), default=str)
    # disable; an admin cannot disable themself
    assert c.post(f"/admin/staff/{ag9}/active", data={"csrf": csrf, "active": "false"},
                  follow_redirects=False).status_code == 303
    assert run_in_transaction(core.sessions, lambda s: s.get(Staff, ag9).active) is False
    assert _audit(core, "staff_disable")[-1]["after"]["active"] is False
    me = c.post(f"/admin/staff/{world.staff['adm']}/active", data={"csrf": csrf, "active": "false"})
    assert me.status_code == 409 and "不能停用自己的账号" in me.text
    # a form without the CSRF token is refused
    assert c.post(f"/admin/staff/{ag9}/active", data={"active": "true"}).status_code == 403


def test_unlock_an_ivr_lockout_with_a_reason_and_the_audit_log_shows_it(core: App, world: World) -> None:
    now = core.clock()
    run_in_transaction(core.sessions, lambda s: s.add(AuthThrottle(scope="ivr_account", subject="390000000700",
                                                                   failures=9, last_failure_at=now)))
    c = _client(core)
    csrf = page_login(c, "adm")
    page = c.get("/admin/locks")
    assert "语音自助（资金账号）" in page.text and "3900****0700" in page.text
    refused = c.post("/admin/locks/unlock", data={"csrf": csrf, "scope": "ivr_account", "subject": "390000000700",
                                                  "reason": "  "})
    assert refused.status_code == 422 and "请填写解锁原因" in refused.text
    done = c.post("/admin/locks/unlock", data={"csrf": csrf, "scope": "ivr_account", "subject": "390000000700",
                                               "reason": "客户来柜台核实身份"})
    assert done.status_code == 200 and "失败 9 次" in done.text and "当前没有正在计数的限制" in done.text
    log = c.get("/admin/audit", params={"action": "unlock_ivr_account"})
    assert "解除语音自助锁定（资金账号）" in log.text and "客户来柜台核实身份" in log.text
    assert "失败次数: 9 → 0" in log.text


def test_dnc_add_search_remove_and_a_csv_import_reports_each_row(core: App, world: World) -> None:
    c = _client(core)
    csrf = page_login(c, "adm")
    assert c.post("/admin/dnc", data={"csrf": csrf, "phone": "13912345678", "reason": "客户要求"},
                  follow_redirects=False).status_code == 303
    again = c.post("/admin/dnc", data={"csrf": csrf, "phone": "+86 139 1234 5678"})
    assert again.status_code == 409 and "已在这份免打扰名单中" in again.text
    bad = c.post("/admin/dnc", data={"csrf": csrf, "phone": "12"})
    assert bad.status_code == 422 and "不是有效的电话号码" in bad.text
    found = c.get("/admin/dnc", params={"q": "5678"})
    assert "139****5678" in found.text and "13912345678" not in found.text
    upload = "phone,reason\n13800001111,投诉后要求\n13912345678,\nnot-a-number,\n13800001111,\n".encode()
    r = c.post("/admin/dnc/import", data={"csrf": csrf}, files={"file": ("dnc.csv", upload, "text/csv")})
    assert r.status_code == 200 and "新增 1 个，已在名单 2 个，无效 1 个" in r.text
    report = [(row.split("</td><td>")) for row in r.text.split('<tr class="outcome-')[1:]]
    assert [x[0].split('"')[0] for x in report] == ["added", "duplicate", "invalid", "duplicate"]
    assert _audit(core, "dnc_import")[-1]["after"] == {"campaign_id": None, "added": 1, "duplicate": 2, "invalid": 1}
    entry = run_in_transaction(core.sessions, lambda s: s.execute(
        select(DncEntry.id).where(DncEntry.phone == "+8613800001111")).scalar_one())
    no_reason = c.post(f"/admin/dnc/{entry}/remove", data={"csrf": csrf, "reason": ""})
    assert no_reason.status_code == 422 and "请填写原因" in no_reason.text
    assert c.post(f"/admin/dnc/{entry}/remove", data={"csrf": csrf, "reason": "号码已换主人"},
                  follow_redirects=False).status_code == 303
    removed = _audit(core, "dnc_remove")[-1]
    assert removed["before"]["phone"] == "138****1111" and removed["reason"] == "号码已换主人"


def test_bulletin_published_is_what_the_hotline_reads(core: App, world: World) -> None:
    c = _client(core)
    csrf = page_login(c, "adm")
    assert c.post("/admin/bulletins", data={"csrf": csrf, "lang": "zh-CN", "title": "春节休市",
                                            "text": "春节期间沪深交易所休市。"}, follow_redirects=False).status_code == 303
    bid = run_in_transaction(core.sessions, lambda s: s.execute(select(Bulletin.id)).scalar_one())
    assert core.ivr.latest_bulletin("zh-CN").text == "春节期间沪深交易所休市。"  # type: ignore[union-attr]
    c.post(f"/admin/bulletins/{bid}", data={"csrf": csrf, "lang": "zh-CN", "title": "春节休市",
                                            "text": "春节期间休市，节后首个交易日恢复。"})
    assert core.ivr.latest_bulletin("zh-CN").text == "春节期间休市，节后首个交易日恢复。"  # type: ignore[union-attr]
    edit = _audit(core, "bulletin_edit")[-1]
    assert edit["before"]["text"] == "春节期间沪深交易所休市。" and edit["after"]["text"].startswith("春节期间休市")
    assert "正在播报" in c.get("/admin/bulletins").text
    c.post(f"/admin/bulletins/{bid}/withdraw", data={"csrf": csrf})
    assert core.ivr.latest_bulletin("zh-CN") is None


def test_dispositions_and_pause_codes_are_seeded_and_configurable_per_campaign_kind(core: App, world: World) -> None:
    seeded = run_in_transaction(core.sessions, lambda s: [c.code for c in admin.codes_for(s, "disposition", "dormant")])
    assert seeded[:3] == ["appointment_booked", "second_call", "callback"] and len(seeded) == 10
    pauses = run_in_transaction(core.sessions, lambda s: [c.code for c in admin.codes_for(s, "pause", None)])
    assert pauses == ["break", "meal", "training", "meeting", "admin"]
    c = _client(core)
    csrf = page_login(c, "adm")
    assert c.post("/admin/codes", data={"csrf": csrf, "code_type": "disposition", "code": "reactivated",
                                        "label_zh": "已激活", "label_en": "Re-activated", "campaign_kind": "dormant",
                                        "position": "0"}, follow_redirects=False).status_code == 303
    bad = c.post("/admin/codes", data={"csrf": csrf, "code_type": "disposition", "code": "Bad Code", "label_zh": "x"})
    assert bad.status_code == 422 and "代码须以小写字母开头" in bad.text
    dormant = run_in_transaction(core.sessions, lambda s: [c.code for c in admin.codes_for(s, "disposition", "dormant")])
    assert dormant[0] == "reactivated" and "reactivated" not in run_in_transaction(
        core.sessions, lambda s: [c.code for c in admin.codes_for(s, "disposition", "reminder")])
    meal = run_in_transaction(core.sessions, lambda s: s.execute(select(DeskCode).where(DeskCode.code == "meal")).scalar_one().id)
    c.post(f"/admin/codes/{meal}", data={"csrf": csrf, "label_zh": "午餐", "label_en": "Lunch", "position": "1"})
    assert "meal" not in run_in_transaction(core.sessions, lambda s: [c.code for c in admin.codes_for(s, "pause", None)])
    upd = _audit(core, "pause_update")[-1]
    assert upd["before"] == {"label_zh": "用餐", "label_en": "Meal", "active": True}
    assert upd["after"] == {"label_zh": "午餐", "label_en": "Lunch", "active": False}


def test_audit_log_filters_and_exports_translated_local_csv(core: App, world: World) -> None:
    c = _client(core)
    csrf = page_login(c, "adm")
    c.post("/admin/dnc", data={"csrf": csrf, "phone": "13912345678"})
    at = core.clock() - timedelta(days=2)  # the DNC entry was added two days ago

    def earlier(s: Any) -> None:
        s.execute(select(AuditLog).where(AuditLog.action == "dnc_add")).scalar_one().at = at

    run_in_transaction(core.sessions, earlier)
    c.post("/admin/bulletins", data={"csrf": csrf, "lang": "en", "title": "Holiday", "text": "Closed."})
    today = core.clock().date()
    only_today = c.get("/admin/audit", params={"first": str(today), "last": str(today)})
    assert 'data-action="bulletin_publish"' in only_today.text and 'data-action="dnc_add"' not in only_today.text
    assert "生效时间: — → 2026-11-25 10:30:00" in only_today.text  # local time, not an ISO stamp
    by_action = c.get("/admin/audit", params={"action": "dnc_add"})
    assert 'data-action="dnc_add"' in by_action.text and 'data-action="bulletin_publish"' not in by_action.text
    assert c.get("/admin/audit", params={"first": "2026-13-01"}).status_code == 422
    r = c.get("/admin/audit.csv", params={"action": "dnc_add"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0] == ["时间", "操作人", "操作", "对象", "修改内容", "原因"]
    local = at.astimezone(__import__("zoneinfo").ZoneInfo(core.settings.timezone)).strftime("%Y-%m-%d %H:%M:%S")
    assert rows[1][0] == local and rows[1][2] == "加入免打扰名单" and rows[1][3] == "139****5678"
    c.cookies.set("cc_lang", "en")
    en = list(csv.reader(io.StringIO(c.get("/admin/audit.csv", params={"action": "dnc_add"}).text.lstrip("\ufeff"))))
    assert en[0] == ["When", "By", "Action", "Subject", "Changes", "Reason"] and en[1][2] == "Added to do-not-call"


def test_use_cases_refuse_anyone_but_an_administrator(core: App, world: World) -> None:
    sup = staff_principal(core.sessions, "sup1")
    assert sup is not None
    with pytest.raises(admin.AdminRefused) as exc:
        admin.create_staff(core, sup, username="x1", display_name="x", role="agent", password="long-enough-1")
    assert exc.value.status == 403 and exc.value.sentence("en") == "Only an administrator may do this"
