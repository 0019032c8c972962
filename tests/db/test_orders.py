"""The order service through the simulated exchange and the journal, on SQLite and PostgreSQL: exactly once per
key, T+1, cancels, settlement into holdings, ``custody check`` clean after; 20 concurrent buys never overspend."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from callcenter.bootstrap import App
from callcenter.domain.access import Actor
from callcenter.services.orders import PlaceOrder
from callcenter.store.db import transaction
from callcenter.store.ledger import balances, check_ledger
from callcenter.store.models import Holding, Order
from tests.conftest import TRADING_NOON_UTC
from tests.factories import make_client

BO = Actor.back_office("tests")
NEXT_DAY = TRADING_NOON_UTC + timedelta(days=1)  # Thursday 2026-11-26, 10:30


def ledger_ok(core: App) -> None:
    with transaction(core.sessions) as s:
        check = check_ledger(s)
    assert check.ok, check.problems


def test_buy_fill_t1_settle_sell_and_ledger(core: App) -> None:
    _, (acct,) = make_client(core, accounts=[(1_000_000_00, 0)])
    q = core.orders.quote("600000")
    order = PlaceOrder("call-1:confirm", acct, "buy", "600000", 1000, q.limit_up, channel="ivr",
                       caller_phone="+8613900000001", actor=BO)
    first = core.orders.place(order)
    assert first.ok and first.frozen_fen > 0 and first.filled_qty > 0
    again = core.orders.place(order)  # the caller's retry after a dropped line
    assert again.replayed and again.order_id == first.order_id
    with transaction(core.sessions) as s:
        assert s.execute(select(func.count(Order.id))).scalar_one() == 1
        row = s.get_one(Order, first.order_id)
        assert (row.channel, row.caller_phone) == ("ivr", "+8613900000001")
    t1 = core.orders.place(PlaceOrder("call-1:sell", acct, "sell", "600000", 100, q.last, actor=BO))
    assert not t1.ok and t1.code == "bought_today_not_sellable"
    assert core.orders.trades_today(acct, actor=BO)
    ledger_ok(core)
    core.orders.settle(TRADING_NOON_UTC.date())
    with transaction(core.sessions) as s:
        holding = s.execute(select(Holding)).scalar_one()
        from callcenter.store.models import Trade

        assert holding.quantity == s.execute(select(func.sum(Trade.quantity))).scalar_one() >= first.filled_qty
        fund_id = holding.fund_account_id
        assert balances(s, "frozen", [fund_id])[fund_id] == 0  # nothing stays frozen after the close
    sold = core.orders.place(PlaceOrder("call-2:sell", acct, "sell", "600000", 100,
                                           core.orders.quote("600000", at=NEXT_DAY).limit_down, actor=BO), at=NEXT_DAY)
    assert sold.ok, sold
    core.orders.settle(NEXT_DAY.date())
    ledger_ok(core)


def test_conflicting_body_and_staff_refused(core: App) -> None:
    _, (acct, aux) = make_client(core, accounts=[(100_000_00, 0), (100_000_00, 0)])
    assert core.orders.place(PlaceOrder("k", acct, "buy", "600000", 100, "10.00", actor=BO)).ok
    assert core.orders.place(PlaceOrder("k", acct, "buy", "600000", 200, "10.00", actor=BO)).code \
        == "idempotency_conflict"
    agent = Actor.staff("agent", 1)
    assert core.orders.place(PlaceOrder("a", acct, "buy", "600000", 100, "10.00", actor=agent)).code \
        == "orders_by_client_only"
    assert core.orders.place(PlaceOrder("x", aux, "buy", "600000", 100, "10.00", actor=BO)).code \
        == "only_main_account_trades"


def test_cancel_releases_the_freeze_and_boundaries(core: App) -> None:
    _, (acct,) = make_client(core, accounts=[(100_000_00, 0)])
    q = core.orders.quote("600000")
    low = q.limit_down  # a buy at the limit down rarely fills
    placed = core.orders.place(PlaceOrder("c1", acct, "buy", "600000", 100, low, actor=BO))
    assert placed.ok and placed.order_id is not None
    if placed.status == "open":
        assert core.orders.open_orders(acct, actor=BO)
        done = core.orders.cancel(acct, placed.order_id, actor=BO)
        assert done.ok and done.status == "cancelled"
        with transaction(core.sessions) as s:
            fund_id = s.get_one(Order, placed.order_id).fund_account_id
            assert balances(s, "frozen", [fund_id])[fund_id] == 0
    shanghai = timezone(timedelta(hours=8))
    auction = datetime(2026, 11, 25, 9, 16, tzinfo=shanghai)
    p2 = core.orders.place(PlaceOrder("c2", acct, "buy", "600000", 100, low, actor=BO), at=auction)
    assert p2.ok and p2.order_id is not None
    late = core.orders.cancel(acct, p2.order_id, actor=BO, at=datetime(2026, 11, 25, 9, 20, tzinfo=shanghai))
    assert late.code == "cancel_not_allowed_now"
    ok = core.orders.cancel(acct, p2.order_id, actor=BO, at=datetime(2026, 11, 25, 9, 19, 59, tzinfo=shanghai))
    assert ok.ok
    ledger_ok(core)


def test_cli_json_shapes(core: App, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.cli import app

    _, (acct,) = make_client(core, accounts=[(100_000_00, 0)])
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCENTER_BANK_SIMULATOR", "false")
    runner = CliRunner()
    res = runner.invoke(app, ["orders", "quote", "600000", "--at", "2026-11-25T10:30:00+08:00", "--json"])
    assert res.exit_code == 0, res.output
    quote = json.loads(res.output.strip().splitlines()[-1])
    assert set(quote) == {"code", "name", "board", "prev_close", "last", "limit_up", "limit_down"}
    assert quote["name"] == "浦发银行" and quote["board"] == "main"
    res = runner.invoke(app, ["orders", "place", "--account", acct, "--side", "buy", "--code", "600000", "--price",
                              quote["limit_up"], "--quantity", "100", "--at", "2026-11-25T10:30:00+08:00", "--json"])
    assert res.exit_code == 0, res.output
    placed = json.loads(res.output.strip().splitlines()[-1])
    assert set(placed) == {"ok", "code", "order_id", "frozen_fen"} and placed["ok"] and placed["frozen_fen"] > 0
    res = runner.invoke(app, ["orders", "place", "--account", acct, "--side", "buy", "--code", "600000", "--price",
                              "10.00", "--quantity", "150", "--at", "2026-11-25T10:30:00+08:00", "--json"])
    assert res.exit_code == 1
    assert json.loads(res.output.strip().splitlines()[-1])["code"] == "quantity_not_board_lot"


def test_twenty_buyers_at_once_never_overspend(core: App) -> None:
    _, (acct,) = make_client(core, accounts=[(50_000_00, 0)])  # enough for 4 of 20 buys of 1,000 × ~10 yuan
    q = core.orders.quote("600000")

    def one(i: int) -> bool:
        return core.orders.place(PlaceOrder(f"t{i}", acct, "buy", "600000", 1000, q.limit_down, actor=BO)).ok

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    with transaction(core.sessions) as s:
        fund_id = s.execute(select(Order.fund_account_id)).scalars().first()
        assert fund_id is not None
        cash = balances(s, "fund", [fund_id])[fund_id]
        frozen = balances(s, "frozen", [fund_id])[fund_id]
    assert cash >= 0 and 1 <= sum(results) <= 5
    ledger_ok(core)
