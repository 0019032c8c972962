"""The agent's call card shows the client's open orders and today's trades, read only: no order button, and the
order service refuses staff (全权委托 is forbidden)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.domain.access import Actor
from callcenter.services import desk
from callcenter.services.orders import PlaceOrder
from callcenter.store.db import transaction
from callcenter.store.models import FundAccount
from callcenter.store.ledger import post
from callcenter.web.app import create_app
from tests.e2e.desk_world import build, call_event, page_login

pytestmark = pytest.mark.db


def test_card_lists_orders_and_trades_read_only(core: App) -> None:
    world = build(core)
    with transaction(core.sessions) as s:
        fund = s.execute(select(FundAccount).where(FundAccount.client_id == world.mine,
                                                   FundAccount.is_main.is_(True))).scalar_one()
        post(s, core.clock(), "test deposit", [("fund", fund.id, 1_000_000_00), ("equity", 0, -1_000_000_00)])
        account = fund.account_no
    q = core.orders.quote("600519")
    me = Actor.client(world.mine)
    filled = core.orders.place(PlaceOrder("card:1", account, "buy", "600519", 100, q.limit_up, channel="ivr", actor=me))
    resting = core.orders.place(PlaceOrder("card:2", account, "buy", "600519", 100, q.limit_down, channel="ivr",
                                           actor=me))
    assert filled.ok and filled.filled_qty > 0 and resting.ok and resting.status == "open"
    c = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(c, "ag1")
    cid = desk.contact_from_event(core.sessions, world.staff["ag1"], call_event(world), core.clock())
    card = c.get(f"/agent/contacts/{cid}/card")
    assert card.status_code == 200
    part = card.text.split('id="client-orders"')[1].split("</div>")[0]
    assert "未成交委托" in part and "当日成交" in part and "贵州茅台" in part and "已报" in part
    assert part.count("<tr><td>") >= 2  # the resting order, and at least one trade
    assert "<button" not in part and "<form" not in part and "禁止全权委托" in part
    agent = Actor.staff("agent", world.staff["ag1"])
    assert core.orders.place(PlaceOrder("card:3", account, "buy", "600519", 100, q.limit_down,
                                        actor=agent)).code == "orders_by_client_only"
