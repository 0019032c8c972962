"""Phone orders on the hotline against the real store (StoreIvrBackend -> OrderService -> simulated exchange ->
journal), through the three carriers: the text phone, FastAGI (the fake Asterisk over loopback) and signed Twilio
webhooks. A buy confirmed with the trading password and filled, a sell refused by T+1, a cancel, PIN and trading
password changes (strength rules, the old one throttled), and hang-ups at each step of an order leaving at most one
order."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from callcenter.bootstrap import App
from callcenter.domain.access import Actor
from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.services.ivr.flow import load_flow
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call
from callcenter.adapters.ivr.textphone import TextPhone
from callcenter.services.auth import hash_secret, verify_secret
from callcenter.services.ivr.store_backend import StoreCallStateStore
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger
from callcenter.store.models import Client, FundAccount, IvrStep, Order
from tests.factories import make_client

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

PIN, TPWD = "246813", "802413"
CALLER = "+8613911112222"


@pytest.fixture
def client(core: App) -> tuple[int, str]:
    client_id, (main,) = make_client(core, accounts=[(1_000_000_00, 0)], pin=PIN)
    with transaction(core.sessions) as s:
        s.execute(update(FundAccount).where(FundAccount.account_no == main).values(trading_pwd_hash=hash_secret(TPWD)))
    return client_id, main


def keys(price: str) -> str:
    return price.replace(".", "*")


def buy_steps(main: str, price: str, quantity: int = 1000) -> list[str]:
    """Language, account, PIN, 6 orders, 2 buy, code, 1 limit, price, quantity, 1 confirm, trading password."""
    return ["1", f"{main}#", f"{PIN}#", "6", "2", "600000#", "1", f"{keys(price)}#", f"{quantity}#", "1", f"{TPWD}#"]


def phone(core: App, call_id: str) -> TextPhone:
    return TextPhone(load_flow("hotline"), core.ivr, caller=CALLER, call_id=call_id, lang="zh-CN",
                     echo=lambda line: None)


def orders(core: App) -> list[Order]:
    with transaction(core.sessions) as s:
        return list(s.execute(select(Order).order_by(Order.id)).scalars())


def ledger_ok(core: App) -> None:
    with transaction(core.sessions) as s:
        check = check_ledger(s)
    assert check.ok, check.problems


def test_text_phone_buy_filled_sell_refused_by_t1_and_cancel(core: App, client: tuple[int, str]) -> None:
    client_id, main = client
    q = core.orders.quote("600000")
    out = "\n".join(phone(core, "buy-1").run("".join(buy_steps(main, q.limit_up) + ["4"])).lines)
    assert "您将委托 买入 浦发银行 证券代码 六零零零零零" in out and "冻结资金" in out and "预计费用" in out
    assert "[place_order] filled" in out or "[place_order] accepted" in out
    (order,) = orders(core)
    assert order.side == "buy" and order.filled_qty > 0 and order.channel == "text" and order.caller_phone == CALLER
    assert "委托编号" in out and "已成交" in out  # today's orders read back (menu 4)
    # T+1: the shares bought today are read back as not sellable, nothing is placed
    sell = ["1", f"{main}#", f"{PIN}#", "6", "3", "600000#", "1", f"{keys(q.limit_down)}#", "100#"]
    out = "\n".join(phone(core, "sell-1").run("".join(sell)).lines)
    assert "[preview_order] rejected" in out and "当日买入的股份当日不能卖出" in out
    assert len(orders(core)) == 1
    # a buy at the limit down stays open; menu 6 cancels it and the freeze goes back
    phone(core, "buy-2").run("".join(buy_steps(main, q.limit_down, 100)))
    assert orders(core)[-1].status == "open" and orders(core)[-1].frozen_fen > 0
    open_now = core.orders.open_orders(main, actor=Actor.client(client_id))  # the first buy may be partly filled
    assert open_now[-1].order_id == orders(core)[-1].id
    out = "\n".join(phone(core, "cancel-1").run(f"1{main}#{PIN}#66{len(open_now)}1").lines)
    assert "请选择要撤销的委托" in out and "撤单成功" in out
    last = orders(core)[-1]
    assert last.status == "cancelled" and last.frozen_fen == 0
    # trades of today (menu 5) on the hotline
    out = "\n".join(phone(core, "trades-1").run(f"1{main}#{PIN}#65").lines)
    assert "成交数量" in out and "浦发银行" in out
    ledger_ok(core)


def test_wrong_trading_password_places_nothing_and_has_its_own_counter(core: App, client: tuple[int, str]) -> None:
    _, main = client
    q = core.orders.quote("600000")
    steps = buy_steps(main, q.limit_up)[:-1] + ["000000#", "111111#", "222222#"]
    out = "\n".join(phone(core, "bad-tpwd").run("".join(steps)).lines)
    assert out.count("交易密码有误") == 2 and "交易密码错误次数过多" in out
    assert orders(core) == []
    # the PIN counter is untouched: the same caller logs in at once
    assert core.ivr.authenticate(main, PIN, CALLER, "after").outcome == "ok"


def test_pin_and_trading_password_changes_with_strength_rules(core: App, client: tuple[int, str]) -> None:
    client_id, main = client
    with transaction(core.sessions) as s:
        s.execute(update(Client).where(Client.id == client_id).values(birthday=__import__("datetime").date(1990, 5, 17)))
    login = f"1{main}#{PIN}#"
    cases = [("123456#123456#", "连续"), ("888888#888888#", "六位相同"), ("900517#900517#", "生日"),
             ("135790#135797#", "不一致")]
    for new, sentence in cases:
        out = "\n".join(phone(core, f"weak-{sentence}").run(f"{login}71{PIN}#{new}").lines)
        assert "新密码未修改" in out and sentence in out, out
    out = "\n".join(phone(core, "wrong-old").run(f"{login}71000000#135790#135790#").lines)
    assert "原密码有误" in out
    out = "\n".join(phone(core, "pin-ok").run(f"{login}71{PIN}#135790#135790#").lines)
    assert "密码修改成功" in out
    assert core.ivr.authenticate(main, "135790", CALLER, "new-pin").outcome == "ok"
    assert core.ivr.authenticate(main, PIN, CALLER, "old-pin").outcome == "wrong_pin"
    out = "\n".join(phone(core, "tpwd-ok").run(f"1{main}#135790#72{TPWD}#246970#246970#").lines)
    assert "密码修改成功" in out
    with transaction(core.sessions) as s:
        fund = s.execute(select(FundAccount).where(FundAccount.account_no == main)).scalar_one()
        assert verify_secret(fund.trading_pwd_hash, "246970") and not verify_secret(fund.trading_pwd_hash, TPWD)
        everything = " ".join(s.execute(select(IvrStep.detail)).scalars())
    for secret in (PIN, TPWD, "135790", "246970"):
        assert secret not in everything


def test_text_phone_hangup_at_each_step_leaves_at_most_one_order(core: App, client: tuple[int, str]) -> None:
    _, main = client
    steps = buy_steps(main, core.orders.quote("600000").limit_up)
    for cut in range(len(steps)):
        phone(core, f"cut-{cut}").run("".join(steps[:cut]))
    assert orders(core) == []  # nobody confirmed with the trading password
    phone(core, "full").run("".join(steps))
    phone(core, "full").run("".join(steps))  # the same call's steps again (a replay): the same key
    assert len(orders(core)) == 1
    ledger_ok(core)


# --- FastAGI: the fake Asterisk over loopback ---------------------------------------------------------------
def agi_steps(main: str, price: str, quantity: int = 1000) -> list[str]:
    return [s.rstrip("#") for s in buy_steps(main, price, quantity)]


async def agi_call(core: App, inputs: list[str], uniqueid: str) -> FakeCall:
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=AgiConfig(
        prompts_dir=Path("/p"), render_text=lambda text, lang: "name"))
    port = server.sockets[0].getsockname()[1]
    async with server:
        call = await run_fake_call("127.0.0.1", port, FakeCall(list(inputs), uniqueid=uniqueid,
                                                               callerid="13912345678"))
        await app.wait_idle()
    return call


async def test_fastagi_buy_confirmed_and_filled(core: App, client: tuple[int, str]) -> None:
    _, main = client
    await agi_call(core, agi_steps(main, core.orders.quote("600000").limit_up) + ["hangup"], "agi-buy")
    (order,) = orders(core)
    assert order.filled_qty > 0 and order.channel == "ivr" and order.caller_phone == "13912345678"
    ledger_ok(core)


@pytest.mark.parametrize("cut", range(3, 11))
async def test_fastagi_hangup_at_each_order_step_places_nothing(core: App, client: tuple[int, str], cut: int) -> None:
    _, main = client
    await agi_call(core, agi_steps(main, core.orders.quote("600000").limit_up)[:cut] + ["hangup"], f"agi-cut-{cut}")
    assert orders(core) == []


async def test_fastagi_connection_dropped_after_confirming_leaves_one_order(core: App, client: tuple[int, str]) -> None:
    _, main = client
    await agi_call(core, agi_steps(main, core.orders.quote("600000").limit_up) + ["drop"], "agi-drop")
    assert len(orders(core)) == 1


# --- Twilio: signed webhooks, replays -----------------------------------------------------------------------
TOKEN, PUBLIC, SID = "test-auth-token-0123456789abcdef", "https://ivr.example.com", "CA00000000000000000000000000000015"


def test_twilio_buy_confirmed_replayed_is_one_order(core: App, client: tuple[int, str]) -> None:
    from callcenter.adapters.ivr.twilio_voice import make_router

    _, main = client
    app = FastAPI()
    # every action answered in its own webhook (a long inline window), so the steps are known in advance: the
    # subject is the replayed confirmation; actions that outlast the window are tests/adapters/test_twilio_voice.py's
    app.include_router(make_router(core.ivr, load_flow("hotline"), TOKEN, PUBLIC,
                                   StoreCallStateStore(core.sessions, core.clock), action_inline_s=10))
    web = TestClient(app)

    def post(path: str, params: dict[str, str], token: str | None = None):  # type: ignore[no-untyped-def]
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)}
        if token:
            headers["I-Twilio-Idempotency-Token"] = token
        return web.post(path, content=urlencode(params), headers=headers)

    base = {"CallSid": SID, "From": CALLER}
    assert post("/twilio/voice", base).status_code == 200
    steps = agi_steps(main, core.orders.quote("600000").limit_up)
    answers = [post(f"/twilio/voice/input?step={n}", {**base, "Digits": d}, token=f"tok-{n}")
               for n, d in enumerate(steps)]
    assert "确认请按1" in answers[-3].text and "冻结资金" in answers[-3].text
    replay = post(f"/twilio/voice/input?step={len(steps) - 1}", {**base, "Digits": steps[-1]}, token="tok-again")
    assert "委托" in answers[-1].text and replay.text == answers[-1].text
    with transaction(core.sessions) as s:
        assert s.execute(select(func.count(Order.id))).scalar_one() == 1
        order = s.execute(select(Order)).scalar_one()
        assert order.channel == "twilio" and order.caller_phone == CALLER and order.filled_qty > 0
    ledger_ok(core)
