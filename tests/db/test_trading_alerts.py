"""成交回报 and 行情报警 through the 财经秘书 path: one SMS per fill for subscribed clients, price alerts firing once
per crossing, inside quiet hours only, nothing sent twice however often the job runs."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.domain.reminders import QuietHours
from callcenter.services.care.sms import SimulatedSms
from callcenter.services.care.subscriptions import SubscriptionService
from callcenter.services.care.trading_alerts import AlertRefused, run_trading_alerts, set_price_alert
from callcenter.domain.access import Actor
from callcenter.services.orders import PlaceOrder
from callcenter.store.db import transaction
from callcenter.store.models import Client, Order, PriceAlert, Trade
from tests.factories import make_client

import pytest


def mobile_of(core: App, client_id: int) -> str:
    with transaction(core.sessions) as s:
        return s.get_one(Client, client_id).mobile


def test_trade_confirmation_once_per_fill_for_subscribers_only(core: App) -> None:
    subscribed, (acct_a,) = make_client(core, accounts=[(1_000_000_00, 0)])
    other, (acct_b,) = make_client(core, accounts=[(1_000_000_00, 0)])
    SubscriptionService(core.sessions, core.clock).set_topic(subscribed, "trade_confirmation", True, source="ivr")
    up = core.orders.quote("600000").limit_up
    for acct, cid in ((acct_a, subscribed), (acct_b, other)):
        assert core.orders.place(PlaceOrder(f"k-{cid}", acct, "buy", "600000", 1000, up, channel="ivr",
                                            actor=Actor.client(cid))).ok
    sms = SimulatedSms()
    report = run_trading_alerts(core, sms)
    with transaction(core.sessions) as s:
        fills_a = s.execute(select(Trade).join(Order, Order.id == Trade.order_id)
                            .where(Order.client_id == subscribed)).scalars().all()
    mine = [m for m in sms.outbox if m.to == mobile_of(core, subscribed)]
    assert report.confirmations == len(mine) == len(fills_a) >= 1  # one message per fill
    assert all("成交回报" in m.body and "浦发银行（600000）" in m.body and "买入" in m.body for m in mine)
    assert not [m for m in sms.outbox if m.to == mobile_of(core, other)]  # not subscribed: nothing
    again = run_trading_alerts(core, sms)
    assert again.confirmations == 0 and len(sms.outbox) == len(mine)


def test_price_alert_fires_once_per_crossing_within_quiet_hours(core: App) -> None:
    cid, _ = make_client(core, accounts=[(0, 0)])
    last_li = int(Decimal(core.orders.quote("600000").last) * 1000)
    alert_id = set_price_alert(core.sessions, core.orders, cid, "600000", "above", last_li - 10, source="agent",
                               now=core.clock())
    sms = SimulatedSms()
    held = run_trading_alerts(core, sms, quiet=QuietHours(sms_start=time(11, 0)))  # 10:30 local: too early
    assert held.alerts == 0 and held.held_quiet == 1 and sms.outbox == []
    first = run_trading_alerts(core, sms)
    assert first.alerts == 1 and "已涨到您设定的" in sms.outbox[0].body
    assert run_trading_alerts(core, sms).alerts == 0 and len(sms.outbox) == 1  # still above: no repeat
    with transaction(core.sessions) as s:  # the price goes back under the threshold: re-armed ...
        s.get_one(PriceAlert, alert_id).threshold_li = last_li + 10
    assert run_trading_alerts(core, sms).rearmed == 1
    with transaction(core.sessions) as s:  # ... and crosses it again: a second message
        s.get_one(PriceAlert, alert_id).threshold_li = last_li - 10
    assert run_trading_alerts(core, sms).alerts == 1 and len(sms.outbox) == 2
    with transaction(core.sessions) as s:
        assert s.get_one(PriceAlert, alert_id).fired_count == 2
    with pytest.raises(AlertRefused):
        set_price_alert(core.sessions, core.orders, cid, "999999", "above", 1000, source="agent", now=core.clock())
    with pytest.raises(AlertRefused):
        set_price_alert(core.sessions, core.orders, cid, "600000", "sideways", 1000, source="agent", now=core.clock())


def test_hotline_sets_an_alert_for_the_caller(core: App) -> None:
    cid, _ = make_client(core, accounts=[(0, 0)])
    assert core.ivr.set_price_alert(str(cid), "600000", "below", 500) is None
    assert core.ivr.set_price_alert(str(cid), "12345", "below", 500) == "unknown_code"
    with transaction(core.sessions) as s:
        row = s.execute(select(PriceAlert)).scalar_one()
        assert (row.client_id, row.direction, row.threshold_li, row.source) == (cid, "below", 5000, "ivr")
