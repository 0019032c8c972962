"""Every branch of ivr_flows/hotline.yaml, driven through the text phone against FakeIvrBackend."""

from datetime import datetime, timedelta, timezone

import pytest

from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.flow import load_flow
from callcenter.domain.ivr.interpreter import (
    ActionResult,
    Collect,
    DigitsEntered,
    Handoff,
    EndCall,
    CallerHungUp,
    FlowRun,
    RunAction,
    Say,
    SetLanguage,
    Timeout,
)
from callcenter.adapters.ivr.textphone import TextPhone

ACCOUNT, PIN = "1234567890123456", "123456"
LOGIN = f"1{ACCOUNT}#{PIN}#"  # Chinese, then account + PIN


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def flow():
    return load_flow("hotline")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def backend(clock):
    return demo_backend(now=clock)


def call(flow, backend, keys, call_id="call-1", lang="zh-CN"):
    return TextPhone(flow, backend, caller="13912345678", call_id=call_id, lang=lang).run(keys)


def text(result) -> str:
    return "\n".join(result.lines)


def test_login_and_balances_in_chinese(flow, backend):
    r = call(flow, backend, LOGIN + "1*")
    out = text(r)
    assert "验证成功" in out
    assert "可用资金 一万二千三百四十五元六角" in out
    assert "冻结资金 五百元" in out and "中国建设银行" in out and "主账户" in out
    assert "Caller: ******" in out and f"Caller: {PIN}" not in r.lines
    assert r.end_reason == "caller_hangup"


def test_english_is_chosen_with_2(flow, backend):
    r = call(flow, backend, f"2{ACCOUNT}#{PIN}#1")
    out = text(r)
    assert "[language] en" in out and "available funds twelve thousand three hundred forty-five yuan and sixty fen" in out


def test_welcome_timeout_defaults_to_chinese(flow, backend):
    out = text(call(flow, backend, "ww"))
    assert "我们没有收到您的按键" in out and "请输入您的资金账号" in out


def test_holdings_largest_first_with_names(flow, backend):
    out = text(call(flow, backend, LOGIN + "2"))
    assert out.index("贵州茅台") < out.index("浦发银行") < out.index("平安银行")
    assert "证券代码 六零零五一九 贵州茅台 持有数量 一百 股 市值 十六万八千元" in out


def test_bulletin_and_repeat(flow, backend):
    out = text(call(flow, backend, LOGIN + "49"))
    assert out.count("今日沪深两市正常交易") == 2


def test_main_menu_repeat_back_and_language_change(flow, backend):
    r = call(flow, backend, LOGIN + "9*2")
    out = text(r)
    assert out.count("查询资金余额请按1") == 2
    assert "[language] en" in out and "For balances, press 1" in out


def test_agent_handoff_carries_summary(flow, backend):
    r = call(flow, backend, LOGIN + "10")
    assert isinstance(r.handoff, Handoff)
    assert r.handoff.client_id == "C-1001"
    assert "account=1234****3456" in r.handoff.summary and "balances:ok" in r.handoff.summary
    assert r.end_reason == "handoff"
    assert ("call-1", "handoff", {"summary": r.handoff.summary}) in backend.events


def test_main_menu_invalid_keys_go_to_an_agent_after_retries(flow, backend):
    r = call(flow, backend, LOGIN + "###")
    assert text(r).count("您的输入有误") == 2 and r.handoff is not None


def test_main_menu_silence_ends_the_call(flow, backend):
    r = call(flow, backend, LOGIN + "www")
    assert r.end_reason == "no_input" and "[hang-up] no_input" in text(r)


def test_account_too_short_is_reprompted_then_call_ends(flow, backend):
    r = call(flow, backend, "1123#123#123#")
    assert text(r).count("您的输入有误") == 2 and r.end_reason == "invalid_input"


def test_pin_timeout(flow, backend):
    r = call(flow, backend, f"1{ACCOUNT}#www")
    assert r.end_reason == "no_input"


def test_three_wrong_pins_end_the_call(flow, backend):
    wrong = f"{ACCOUNT}#000000#"
    r = call(flow, backend, "1" + wrong * 3 + "1")
    out = text(r)
    assert out.count("账号或密码有误") == 2 and "密码错误次数过多" in out
    assert r.end_reason == "pin_attempts"
    assert "[balances]" not in out


def test_unknown_account_sounds_like_wrong_pin_and_counts(flow, backend):
    r = call(flow, backend, "1" + "999999#000000#" * 3)
    assert text(r).count("账号或密码有误") == 2 and r.end_reason == "pin_attempts"


def spoken(result) -> list[str]:
    """What the caller hears (not what they type, nor the text phone's [action] outcome lines)."""
    return [line for line in result.lines if line.startswith("IVR:")]


def test_five_failures_across_calls_make_the_account_back_off_not_lock(flow, backend, clock):
    wrong = f"{ACCOUNT}#000000#"
    call(flow, backend, "1" + wrong * 3, call_id="a")
    r2 = call(flow, backend, "1" + wrong * 2 + f"{ACCOUNT}#{PIN}#", call_id="b")  # 5th failure: backoff starts
    assert "[authenticate] locked" in text(r2) and r2.end_reason == "pin_attempts"
    assert text(r2).count("账号或密码有误") == 2  # backing off sounds exactly like a wrong PIN
    r3 = call(flow, backend, LOGIN, call_id="c")  # even the right PIN waits its turn
    assert "[authenticate] locked" in text(r3) and "[authenticate] ok" not in text(r3)
    clock.now += timedelta(seconds=30)  # the first wait is 30 seconds, not 30 minutes
    r4 = call(flow, backend, LOGIN + "1", call_id="d")
    assert "[authenticate] ok" in text(r4)


def test_locked_unknown_and_wrong_pin_sound_the_same(flow, backend, clock):
    for i in range(5):
        backend.authenticate("1234567890120002", "000000", f"other-{i}", f"x{i}")  # the second account backs off
    calls = {name: call(flow, backend, f"1{number}#{pin}#", call_id=name)
             for name, number, pin in [("unknown_account", "9999999999999999", PIN), ("wrong_pin", ACCOUNT, "000000"),
                                       ("locked", "1234567890120002", "654321")]}
    assert all(f"[authenticate] {name}" in text(r) for name, r in calls.items())  # three different outcomes...
    heard = {name: spoken(r) for name, r in calls.items()}
    assert heard["unknown_account"] == heard["wrong_pin"] == heard["locked"]  # ...that sound the same
    assert "三十分钟" not in "\n".join(heard["locked"])


def test_success_resets_the_cross_call_counter(flow, backend):
    wrong = f"{ACCOUNT}#000000#"
    call(flow, backend, "1" + wrong * 2 + f"{ACCOUNT}#{PIN}#", call_id="a")
    r = call(flow, backend, "1" + wrong * 2 + f"{ACCOUNT}#{PIN}#1", call_id="b")
    assert "[balances] ok" in text(r)


def test_pin_limit_comes_from_settings(flow, backend):
    r = TextPhone(flow, backend, call_id="x", limits={"pin_failures": 1}).run(f"1{ACCOUNT}#000000#")
    assert r.end_reason == "pin_attempts"


# --- transfers -----------------------------------------------------------------------------------
TRANSFER_TO_BROKER_CCB = LOGIN + "312" + "1000*5#"  # bank -> broker, second bank (CCB), 1000.50 yuan


def test_confirmed_transfer_moves_money_once_with_reference(flow, backend):
    before = backend.accounts["1234567890120002"].available_fen
    r = call(flow, backend, TRANSFER_TO_BROKER_CCB + "1")
    out = text(r)
    assert "您将办理 银行转证券， 中国建设银行 账号尾号 零零零二 转账金额 一千元五角" in out
    assert len(backend.transfers) == 1
    t = backend.transfers[0]
    assert (t.direction, t.amount_fen, t.fund_account_id, t.channel) == ("bank_to_broker", 100050, "FA-2", "ivr-text")
    assert backend.accounts["1234567890120002"].available_fen == before + 100050
    assert f"转账成功，业务流水号为 {''.join('零一二三四五六七八九'[int(c)] for c in t.reference)}" in out
    assert any(e[1] == "do_transfer" and e[2].get("reference") == t.reference for e in backend.events)


@pytest.mark.parametrize("keys", [
    LOGIN + "3",                  # hang up at direction
    LOGIN + "31",                 # at bank choice
    LOGIN + "312",                # at amount
    LOGIN + "312100",             # half-way through the amount
    TRANSFER_TO_BROKER_CCB,       # at read-back / confirm
    TRANSFER_TO_BROKER_CCB + "2",  # cancelled
    TRANSFER_TO_BROKER_CCB + "ww",  # silence at confirm = cancel
    TRANSFER_TO_BROKER_CCB + "55",  # invalid keys at confirm = cancel
    LOGIN + "31*",                # back from bank choice
    LOGIN + "312" + "1*2*3#0*#w",  # bad amounts then silence
])
def test_no_money_moves_unless_confirmed(flow, backend, keys):
    balances = {k: (a.available_fen, a.bank_balance_fen) for k, a in backend.accounts.items()}
    r = call(flow, backend, keys)
    assert backend.transfers == []
    assert {k: (a.available_fen, a.bank_balance_fen) for k, a in backend.accounts.items()} == balances
    assert r.end_reason in ("caller_hangup", "no_input")


def test_cancel_says_no_money_moved(flow, backend):
    assert "转账已取消，资金未发生变动" in text(call(flow, backend, TRANSFER_TO_BROKER_CCB + "2"))


def test_bad_amount_is_reprompted(flow, backend):
    r = call(flow, backend, LOGIN + "312" + "1*2*3#" + "200#" + "1")
    assert "金额输入有误" in text(r) and backend.transfers[0].amount_fen == 20000


def test_rejected_transfer_says_why(flow, backend):
    r = call(flow, backend, LOGIN + "322" + "99999999#1")  # broker -> bank, more than available
    assert "可用资金不足" in text(r) and backend.transfers == []


def test_single_bank_skips_the_bank_choice(flow, backend):
    del backend.accounts["1234567890120002"]
    r = call(flow, backend, LOGIN + "31" + "50#1")
    assert "请选择转账银行" not in text(r) and backend.transfers[0].fund_account_id == "FA-1"


def test_backend_error_is_a_branch_not_a_crash(flow, backend):
    def boom(*a, **k):
        raise RuntimeError("db down")

    backend.balances = boom  # type: ignore[method-assign]
    r = call(flow, backend, LOGIN + "1")
    assert "系统繁忙" in text(r)


# --- the pure state machine itself ---------------------------------------------------------------
def test_session_hangup_after_confirm_still_accepts_no_second_action(flow):
    s = FlowRun(flow, caller="13912345678", call_id="c9")
    cmds = s.start()
    assert isinstance(cmds[-1], Collect)
    s.feed(DigitsEntered("1"))
    s.feed(DigitsEntered(ACCOUNT))
    cmds = s.feed(DigitsEntered(PIN))
    run = [c for c in cmds if isinstance(c, RunAction)][0]
    assert run.name == "authenticate" and run.args == {"fund_account": ACCOUNT, "pin": PIN}
    assert "pin" not in s.vars and "'pin'" not in str(s.snapshot())  # the PIN lives only in the command
    s.feed(ActionResult("authenticate", "ok", {"client_id": "C-1", "masked_account": "***3456"}))
    s.feed(DigitsEntered("3"))
    s.feed(DigitsEntered("1"))
    s.feed(ActionResult("transfer_accounts", "one", {"account": {"id": "FA-1", "account_tail": "3456",
                                                                "bank_code": "icbc"}}))
    s.feed(DigitsEntered("12345*6"))
    cmds = s.feed(DigitsEntered("1"))
    transfer = [c for c in cmds if isinstance(c, RunAction)][0]
    assert transfer.args["amount_fen"] == 1234560 and transfer.idempotency_key == f"c9:{s.seq}"
    assert s.feed(DigitsEntered("1")) == []  # a second confirm while the transfer runs is ignored
    end = s.feed(CallerHungUp())
    assert s.ended and end[0].detail["pending_action"] == "transfer"
    assert s.feed(ActionResult("transfer", "ok", {"reference": "1"})) == []


def test_snapshot_round_trip(flow):
    s = FlowRun(flow, caller="1", call_id="c1")
    s.start()
    cmds = s.feed(DigitsEntered("2"))
    assert SetLanguage("en") in cmds and any(isinstance(c, Say) and c.lang == "en" for c in cmds)
    again = FlowRun.restore(flow, s.snapshot())
    assert again.feed(Timeout()) == s.feed(Timeout())


def test_hangup_node_emits_hangup(flow):
    s = FlowRun(flow, call_id="c")
    s.start()
    s.feed(DigitsEntered("1"))
    s.feed(Timeout())
    s.feed(Timeout())
    cmds = s.feed(Timeout())
    assert cmds[-1] == EndCall("no_input") and s.end_reason == "no_input"
