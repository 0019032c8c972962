"""The care runner calls its jobs at their local times on trading days, once a day, and stops on request;
the 财经秘书 service as the IVR and the agent screen use it."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from callcenter.parts.care import CareWork, care_runner
from callcenter.services.care.subscriptions import SubscriptionService, UnknownTopic
from tests.db.test_care_support import client_holding, utc


class RecordingWork(CareWork):
    def __init__(self, core) -> None:  # type: ignore[no-untyped-def]
        super().__init__(core, sms=None)
        self.calls: list[tuple[str, date]] = []

    def regulatory(self, day: date) -> None:
        self.calls.append(("regulatory", day))

    def reminders(self, day: date) -> None:
        self.calls.append(("reminders", day))

    def trading_alerts(self, day: date) -> None:
        self.calls.append(("trading_alerts", day))


async def test_runner_runs_due_jobs_once_and_stops(core, clock):
    clock.now = utc(2026, 10, 2, 2)  # 10:00 on a National Day holiday: only the greetings/reminders job
    work = RecordingWork(core)
    stop = asyncio.Event()
    runs: list[str] = []

    def on_run(name: str, day: date) -> None:
        runs.append(name)
        if len(runs) == 1:
            clock.now = utc(2026, 10, 8, 2)  # next wake-up: the first trading day after the holiday
        elif len(runs) == 5:
            stop.set()

    await asyncio.wait_for(care_runner(core, stop, work=work, max_sleep_s=0.0, on_run=on_run), timeout=30)
    # the trading-day interval job (成交回报 / 行情报警) runs on 10-08 only, once per interval
    assert work.calls == [("reminders", date(2026, 10, 2)), ("trading_alerts", date(2026, 10, 8)),
                          ("regulatory", date(2026, 10, 8)), ("reminders", date(2026, 10, 8))]
    assert runs == ["reminders", "trading_alerts", "regulatory", "reminders", "notify_calls"]


async def test_runner_keeps_going_when_a_job_fails(core, clock):
    clock.now = utc(2026, 3, 4, 2)
    stop = asyncio.Event()

    class Failing(RecordingWork):
        def regulatory(self, day: date) -> None:
            raise RuntimeError("database down")

    work = Failing(core)
    done: list[str] = []

    def on_run(name: str, day: date) -> None:
        done.append(name)
        if name == "notify_calls":
            stop.set()

    await asyncio.wait_for(care_runner(core, stop, work=work, max_sleep_s=0.0, on_run=on_run), timeout=30)
    assert done == ["trading_alerts", "reminders", "notify_calls"]
    assert work.calls == [("trading_alerts", date(2026, 3, 4)), ("reminders", date(2026, 3, 4))]


def test_subscriptions_from_the_ivr_and_the_agent_screen(core):
    cid = client_holding(core)
    subs = SubscriptionService(core.sessions, core.clock)
    prefs = subs.get(cid)
    assert prefs.topics == {"corporate_actions": True, "ipo": False, "bulletin": False, "market_close": False,
                            "birthday": True, "trade_confirmation": False, "price_alert": True}
    menu = subs.ivr_menu(cid, "zh-CN")
    assert "按1取消持仓股票配股" in menu and "按4开通收盘综述" in menu
    topic, enabled, say = subs.ivr_toggle(cid, "4", "zh-CN")
    assert (topic, enabled) == ("market_close", True) and "已为您开通收盘综述" in say
    assert subs.ivr_toggle(cid, "9", "zh-CN") is None and subs.ivr_toggle(cid, "*", "zh-CN") is None
    subs.set_topic(cid, "birthday", False, source="agent", staff_id=None)
    assert subs.get(cid).topics["birthday"] is False and subs.get(cid).topics["market_close"] is True
    assert "press 4 to stop market close summary" in subs.ivr_menu(cid, "en")
    with pytest.raises(UnknownTopic):
        subs.set_topic(cid, "horoscope", True, source="agent")
    subs.opt_out(cid, "call", source="agent")
    subs.opt_out(cid, "call", source="agent")
    assert subs.get(cid).opted_out == frozenset({"call"})
    subs.opt_in(cid, "call")
    assert subs.get(cid).opted_out == frozenset()
