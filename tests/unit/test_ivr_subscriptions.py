"""The hotline's 财经秘书 menu (main menu key 5): it reads each topic's state and one key toggles one topic —
through the text phone against FakeIvrBackend, and against the store through SubscriptionService."""

from __future__ import annotations

import pytest

from callcenter.domain.reminders import TOPICS
from callcenter.services.care.subscriptions import IVR_TOPICS, SubscriptionService
from callcenter.services.ivr.backend import IVR_TOPIC_ORDER, CallContext, demo_backend, run_action
from callcenter.services.ivr.flow import load_flow
from callcenter.domain.ivr.interpreter import RunAction
from callcenter.adapters.ivr.textphone import TextPhone

ACCOUNT, PIN = "1234567890123456", "123456"
LOGIN = f"1{ACCOUNT}#{PIN}#"
LOGIN_EN = f"2{ACCOUNT}#{PIN}#"


@pytest.fixture(scope="module")
def flow():  # type: ignore[no-untyped-def]
    return load_flow("hotline")


def call(flow, backend, keys: str):  # type: ignore[no-untyped-def]
    return TextPhone(flow, backend, caller="13912345678", call_id="sub-1").run(keys)


def test_fake_and_store_read_the_topics_in_the_same_key_order() -> None:
    assert IVR_TOPIC_ORDER == IVR_TOPICS
    assert set(IVR_TOPICS) == set(TOPICS)


def test_menu_reads_current_state_of_every_topic(flow) -> None:  # type: ignore[no-untyped-def]
    r = call(flow, demo_backend(), LOGIN + "5")
    out = "\n".join(r.lines)
    assert "订阅或取消财经秘书提醒请按5" in out
    assert "[subscriptions] ok" in out
    # defaults: corporate actions and birthday on, the rest off
    assert "持仓股票配股、增发、权证、分红提示 已订阅 更改请按 一" in out
    assert "新股申购提示 未订阅 更改请按 二" in out
    assert "收盘综述 未订阅 更改请按 四" in out
    assert "生日祝福 已订阅 更改请按 五" in out


def test_one_key_toggles_one_topic_and_the_menu_is_read_again(flow) -> None:  # type: ignore[no-untyped-def]
    backend = demo_backend()
    r = call(flow, backend, LOGIN + "5" + "2" + "1" + "*")
    out = "\n".join(r.lines)
    assert "[toggle_subscription] enabled" in out and "已为您开通 新股申购提示" in out
    assert "[toggle_subscription] disabled" in out and "已为您取消 持仓股票配股、增发、权证、分红提示" in out
    assert backend.topics_by_client["C-1001"] == {"ipo": True, "corporate_actions": False}
    # after the second toggle the menu reads the new state
    assert out.rfind("新股申购提示 已订阅") > out.index("已为您取消")
    assert out.rfind("持仓股票配股、增发、权证、分红提示 未订阅") > out.index("已为您取消")
    # the call record names the topic changed, never anything else of the client
    toggles = [d for _, step, d in backend.events if d.get("action") == "toggle_subscription"]
    assert toggles == [{"action": "toggle_subscription", "outcome": "enabled", "topic": "ipo"},
                       {"action": "toggle_subscription", "outcome": "disabled", "topic": "corporate_actions"}]


def test_star_goes_back_and_zero_reaches_an_agent(flow) -> None:  # type: ignore[no-untyped-def]
    r = call(flow, demo_backend(), LOGIN + "5*")
    assert "\n".join(r.lines).count("查询资金余额请按1") == 2
    r = call(flow, demo_backend(), LOGIN + "50")
    assert r.handoff is not None and "subscriptions:ok" in r.handoff.summary


def test_english_menu(flow) -> None:  # type: ignore[no-untyped-def]
    out = "\n".join(call(flow, demo_backend(), LOGIN_EN + "53").lines)
    assert "To choose your alerts, press 5" in out
    assert "new share subscriptions off To change, press two" in out
    assert "Switched on: company bulletins and news" in out


def test_a_key_without_a_topic_is_refused_by_the_backend() -> None:
    backend = demo_backend()
    ctx = CallContext("c", "", "ivr-text")
    for digit in ("0", "8", "", "#"):
        res = run_action(backend, RunAction("toggle_subscription", {"client_id": "C-1001", "digit": digit}), ctx)
        assert res.outcome == "invalid"
    assert backend.topics_by_client == {}


@pytest.mark.db
def test_store_backend_toggles_through_the_subscription_service(core, flow) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_client

    client_id, (main,) = make_client(core, accounts=[(100_00, 0)], pin=PIN)
    subs = core.ivr.subscriptions(str(client_id), "zh-CN")
    assert [(s.digit, s.topic, s.enabled) for s in subs] == [
        (str(i), tp, TOPICS[tp]) for i, tp in enumerate(IVR_TOPICS, start=1)]
    r = TextPhone(flow, core.ivr, caller="13900000001", call_id="sub-db").run(f"1{main}#{PIN}#" + "54")
    out = "\n".join(r.lines)
    assert "[toggle_subscription] enabled" in out and "已为您开通 收盘综述" in out
    prefs = SubscriptionService(core.sessions, core.clock).get(client_id)
    assert prefs.topics["market_close"] is True
    assert core.ivr.toggle_subscription(str(client_id), "4", "en").enabled is False
    assert SubscriptionService(core.sessions, core.clock).get(client_id).topics["market_close"] is False
    assert core.ivr.toggle_subscription(str(client_id), "9", "zh-CN") is None
