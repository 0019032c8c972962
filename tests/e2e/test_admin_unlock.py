"""Administrators unlock throttles (hardening finding 6): a service function that needs an admin principal and
a reason and writes the audit log (who, what, when, before/after), exposed as /api/admin/throttles (admins only)
and as ``callcenter admin unlock-login`` / ``unlock-ivr``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.staff_sessions import staff_principal
from callcenter.services.throttles import NotAllowed, Scope, ThrottlePolicies, Throttles, UnlockRefused
PROJECT_ROOT = Path(__file__).resolve().parents[2]
from callcenter.store.db import transaction
from callcenter.store.models import AuditLog
from callcenter.web.app import create_app
from tests.conftest import FixedClock
from tests.factories import make_client, make_staff

PIN = "246813"


@pytest.fixture
def api(core: App) -> TestClient:
    return TestClient(create_app(core), raise_server_exceptions=False)


@pytest.fixture
def people(core: App) -> dict[str, int]:
    return {"adm": make_staff(core, "adm", "pw-admin-1", "admin"),
            "sup1": make_staff(core, "sup1", "pw-super-1", "supervisor"),
            "ag1": make_staff(core, "ag1", "pw-agent-1", "agent")}


def bearer(api: TestClient, user: str, password: str) -> dict[str, str]:
    r = api.post("/api/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def throttles(core: App) -> Throttles:
    return Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock)


def test_unlock_needs_an_admin_and_a_reason_and_is_audited(core: App, people: dict[str, int], clock: FixedClock) -> None:
    _, (main,) = make_client(core, accounts=[(0, 0)], pin=PIN)
    for i in range(5):
        core.ivr.authenticate(main, "000000", f"+86139000000{i:02}", f"c{i}")
    assert core.ivr.authenticate(main, PIN, "+8613900000099", "c9").outcome == "locked"
    service = throttles(core)
    with pytest.raises(NotAllowed):
        service.unlock(staff_principal(core.sessions, "sup1"), Scope.IVR_ACCOUNT, main, "client called")
    with pytest.raises(NotAllowed):
        service.unlock(None, Scope.IVR_ACCOUNT, main, "client called")
    admin = staff_principal(core.sessions, "adm")
    with pytest.raises(UnlockRefused):
        service.unlock(admin, Scope.IVR_ACCOUNT, main, "   ")
    listed = service.counting(admin)
    assert [(v.scope, v.subject, v.failures) for v in listed][0] == (Scope.IVR_ACCOUNT, f"{main[:4]}****{main[-4:]}", 5)
    clock.now += timedelta(seconds=5)
    result = service.unlock(admin, Scope.IVR_ACCOUNT, main, "client verified at the branch")
    assert result.before.failures == 5 and result.before.blocked_until is not None
    assert result.after.failures == 0 and result.after.blocked_until is None
    assert core.ivr.authenticate(main, PIN, "+8613900000099", "c10").outcome == "ok"
    with transaction(core.sessions) as s:
        entry = s.execute(select(AuditLog).where(AuditLog.id == result.audit_id)).scalar_one()
        detail = json.loads(entry.detail)
        assert (entry.staff_id, entry.action, entry.at) == (people["adm"], "unlock_ivr_account", clock.now)
        assert entry.client_id is not None
        assert detail["by"] == "adm" and detail["reason"] == "client verified at the branch"
        assert detail["before"]["failures"] == 5 and detail["after"]["failures"] == 0
        assert main not in entry.detail  # account numbers masked
        assert s.execute(select(AuditLog).where(AuditLog.action.like("unlock%"))).scalars().all() == [entry]


def test_the_api_is_for_admins_only(api: TestClient, core: App, people: dict[str, int]) -> None:
    for _ in range(5):
        api.post("/api/login", json={"username": "ag1", "password": "nope"})
    assert api.post("/api/login", json={"username": "ag1", "password": "pw-agent-1"}).status_code == 429
    body = {"scope": "login_user", "subject": "ag1", "reason": "agent forgot the new password"}
    assert api.post("/api/admin/throttles/unlock", json=body).status_code == 401
    sup = bearer(api, "sup1", "pw-super-1")
    assert api.get("/api/admin/throttles", headers=sup).status_code == 403
    r = api.post("/api/admin/throttles/unlock", json=body, headers=sup)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    adm = bearer(api, "adm", "pw-admin-1")
    assert {"scope": "login_user", "subject": "ag1"}.items() <= api.get("/api/admin/throttles", headers=adm).json()[0].items()
    r = api.post("/api/admin/throttles/unlock", json={**body, "reason": " "}, headers=adm)
    assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required"
    assert api.post("/api/admin/throttles/unlock", json={**body, "scope": "everything"}, headers=adm).status_code == 422
    r = api.post("/api/admin/throttles/unlock", json=body, headers=adm)
    assert r.status_code == 200, r.text
    assert r.json()["before"]["failures"] == 5 and r.json()["after"]["failures"] == 0
    assert api.post("/api/login", json={"username": "ag1", "password": "pw-agent-1"}).status_code == 200


def test_the_cli_unlocks_logins_and_ivr_accounts(core: App, db_url: str, people: dict[str, int], clock: FixedClock) -> None:
    clock.now = datetime.now(timezone.utc)  # the command runs on the real clock
    _, (main,) = make_client(core, accounts=[(0, 0)], pin=PIN)
    sessions = create_app(core).state.staff_sessions
    for _ in range(5):
        sessions.login("ag1", "nope", clock.now, "10.0.0.9")
        core.ivr.authenticate(main, "000000", "+8613912345678", "x")
    env = {**os.environ, "CALLCENTER_DATABASE_URL": db_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter.cli", "admin", *args], env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=120)

    refused = cli("unlock-login", "ag1", "--reason", "test", "--by", "sup1", "--lang", "en")
    assert refused.returncode == 2 and '"sup1" is not an active administrator' in refused.stderr
    done = cli("unlock-login", "ag1", "--ip", "10.0.0.9", "--reason", "agent called the desk", "--by", "adm")
    assert done.returncode == 0, done.stderr
    assert "已解除员工登录（用户名）的限制：ag1（失败 5 次" in done.stdout
    assert "已解除员工登录（IP 地址）的限制：10.0.0.9" in done.stdout
    done = cli("unlock-ivr", main, "--caller", "+8613912345678", "--reason", "client verified", "--by", "adm",
               "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert f"Lifted the IVR (fund account) lockout of {main[:4]}****{main[-4:]} (5 failures" in done.stdout
    assert main not in done.stdout
    with transaction(core.sessions) as s:
        actions = sorted(s.execute(select(AuditLog.action).where(AuditLog.staff_id == people["adm"])).scalars())
    assert actions == ["unlock_ivr_account", "unlock_ivr_caller", "unlock_login_ip", "unlock_login_user"]
    assert core.ivr.authenticate(main, PIN, "+8613912345678", "y").outcome == "ok"
