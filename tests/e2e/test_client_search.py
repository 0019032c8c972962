"""Issue 13: client search for the desk, within what the searcher may read, masked and audit-logged."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Client, FundAccount
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, World, build, connect_call

pytestmark = pytest.mark.db


def login(api: TestClient, user: str) -> dict[str, str]:
    r = api.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_search_by_number_phone_tail_and_name_stays_inside_the_group(core: App) -> None:
    world: World = build(core)

    def facts(s):  # type: ignore[no-untyped-def]
        mine, theirs = s.get(Client, world.mine), s.get(Client, world.theirs)
        mine.name, theirs.name = "张伟", "张敏"
        account = s.execute(select(FundAccount.account_no).where(FundAccount.client_id == world.mine)
                            .order_by(FundAccount.seq)).scalars().first()
        return mine.client_no, theirs.client_no, mine.mobile, account

    mine_no, theirs_no, mobile, account = run_in_transaction(core.sessions, facts)
    api = TestClient(create_app(core))
    ag1 = login(api, "ag1")
    ids = lambda r: [c["id"] for c in r.json()]  # noqa: E731
    assert ids(api.get("/api/clients", params={"q": "张"}, headers=ag1)) == [world.mine]  # not 张敏 of group 2
    assert ids(api.get("/api/clients", params={"q": mine_no}, headers=ag1)) == [world.mine]
    assert ids(api.get("/api/clients", params={"q": mobile[-4:]}, headers=ag1)) == [world.mine]
    assert ids(api.get("/api/clients", params={"q": account}, headers=ag1)) == [world.mine]
    assert api.get("/api/clients", params={"q": theirs_no}, headers=ag1).json() == []  # never probed
    shown = api.get("/api/clients", params={"q": mine_no}, headers=ag1).json()[0]
    assert "****" in shown["mobile"] and shown["mobile"] != mobile
    adm = login(api, "adm")
    assert sorted(ids(api.get("/api/clients", params={"q": "张"}, headers=adm))) == sorted([world.mine, world.theirs])
    assert api.get("/api/clients", params={"q": ""}, headers=ag1).status_code == 422
    assert api.get("/api/clients", params={"q": "x" * 33}, headers=ag1).status_code == 422
    logged = run_in_transaction(core.sessions, lambda s: s.execute(
        select(AuditLog.detail).where(AuditLog.action == "search_clients").order_by(AuditLog.id)).scalars().all())
    assert len(logged) == 7 and all(mobile[-8:-4] not in d for d in logged)


def test_an_agent_finds_the_client_of_their_call_from_another_group(core: App) -> None:
    world = build(core)
    theirs_no = run_in_transaction(core.sessions, lambda s: s.get(Client, world.theirs).client_no)
    api = TestClient(create_app(core))
    ag2 = login(api, "ag2")
    assert api.get("/api/clients", params={"q": theirs_no}, headers=ag2).json()[0]["id"] == world.theirs
    connect_call(core, world)  # world's call reaches ag1, whose group is 1: the client is group 1's anyway
    ag1 = login(api, "ag1")
    assert api.get("/api/clients", params={"q": theirs_no}, headers=ag1).json() == []
