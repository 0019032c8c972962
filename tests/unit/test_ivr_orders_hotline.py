"""The orders menu of ivr_flows/hotline.yaml on the in-memory fake (Chinese first, English second), and the pure
strength rules of new PINs and trading passwords."""

from datetime import date

import pytest

from callcenter.domain.credentials import check_new_secret, weakness
from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.flow import load_flow
from callcenter.adapters.ivr.textphone import TextPhone

ACCOUNT, PIN, TPWD = "1234567890123456", "123456", "802413"


@pytest.fixture(scope="module")
def flow():
    return load_flow("hotline")


def run(flow, backend, keys, lang_key="1", call_id="c-1"):
    return "\n".join(TextPhone(flow, backend, caller="13912345678", call_id=call_id).run(
        f"{lang_key}{ACCOUNT}#{PIN}#" + keys).lines)


@pytest.mark.parametrize("secret,code", [("111111", "all_same"), ("123456", "sequential"), ("987654", "sequential"),
                                         ("012345", "sequential"), ("900517", "birthday"), ("051790", "birthday"),
                                         ("170590", "birthday"), ("12345", "not_six_digits"), ("12a456", "not_six_digits"),
                                         ("135790", None), ("112233", None), ("123457", None)])
def test_weakness(secret, code):
    assert weakness(secret, date(1990, 5, 17)) == code


def test_check_new_secret():
    assert check_new_secret("135790", "135791") == "mismatch"
    assert check_new_secret("135790", "135790", old="135790") == "same_as_old"
    assert check_new_secret("135790", "135790", old="246813") is None
    assert check_new_secret("900517", "900517") is None  # no birthday known: only the other rules


def test_quote_in_chinese_and_english(flow):
    out = run(flow, demo_backend(), "61600519#")
    assert "贵州茅台 证券代码 六零零五一九 最新价 一千六百八十元 下跌 十元" in out
    out = run(flow, demo_backend(), "61000001#", lang_key="2")
    assert "last price eleven yuan and fifty-two fen unchanged" in out


def test_buy_readback_and_confirm_then_cancel_an_open_order(flow):
    backend = demo_backend()
    out = run(flow, backend, f"62600000#17*0#100#1{TPWD}#")  # 7.00 < last 7.50: stays open
    assert "您将委托 买入 浦发银行 证券代码 六零零零零零 价格 七元 数量 一百 股 冻结资金 七百零五元 预计费用 五元" in out
    assert "[place_order] accepted" in out and "委托已受理" in out
    assert backend.accounts[ACCOUNT].frozen_fen == 500_00 + 705_00  # the demo account had 500 yuan frozen already
    out = run(flow, backend, "6611", call_id="c-2")
    assert "撤单成功" in out and backend.orders[0].status == "cancelled"
    assert backend.accounts[ACCOUNT].frozen_fen == 500_00 and backend.order_meta["1"][1] == "text"


def test_market_order_and_sell_of_todays_shares(flow):
    backend = demo_backend()
    out = run(flow, backend, f"62600000#2300#1{TPWD}#")  # market buy of 300
    assert "市价委托" in out and "[place_order] filled" in out
    out = run(flow, backend, "63600000#17*5#2100#", call_id="c-2")  # 2000 held since yesterday + 300 today
    assert "当日买入的股份当日不能卖出" in out and len(backend.orders) == 1
    out = run(flow, backend, "63600000#17*5#2400#", call_id="c-3")
    assert "可卖股份不足" in out


def test_declined_readback_and_wrong_password_place_nothing(flow):
    backend = demo_backend()
    out = run(flow, backend, "62600000#17*6#100#2")
    assert "委托已取消，未报出任何订单" in out
    out = run(flow, backend, "62600000#17*6#100#1000000#111111#222222#", call_id="c-2")
    assert out.count("交易密码有误") == 2 and "交易密码错误次数过多" in out
    assert backend.orders == []


def test_english_menu_and_password_change(flow):
    backend = demo_backend()
    out = run(flow, backend, f"72{TPWD}#135790#135790#", lang_key="2")
    assert "Please enter your current trading password" in out and "Your password has been changed." in out
    assert backend.accounts[ACCOUNT].trading_password == "135790"
    out = run(flow, backend, "71123456#222222#222222#", call_id="c-2")
    assert "新密码未修改： 新密码不能是六位相同的数字。" in out


def test_price_alert_and_market_summary(flow):
    backend = demo_backend()
    out = run(flow, backend, "68600000#18*0#7")
    assert "行情报警已设置： 浦发银行 涨到 八元" in out
    assert backend.price_alerts == [("C-1001", "600000", "above", 800)]
    assert "市场概况： 浦发银行 七元五角 上涨 一角 贵州茅台" in out
