"""Call controls and live monitoring in Debian's Chromium (issue 13) against the real server on loopback, with
the dialler engine running on the simulated PBX in the server's loop: agent ag1 gets a call, brings bo1 into a
three-way conference from the call card, bo1 leaves it from theirs, ag1 transfers the call to bo1; the supervisor
listens, whispers and barges from the wall board. The simulated PBX models who hears whom, so each step is
asserted on its hearing matrix; screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from callcenter.adapters.telephony.simulated import SimulatedPbx
from callcenter.bootstrap import App
from callcenter.domain import hearing as H
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.parts.dialer import dialer_deps
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Staff
from tests.e2e.desk_world import World, build
from tests.e2e.test_browser_screens import (  # noqa: F401
    ARTIFACTS, Server, _csp_violations, _login, _save, browser, serving_with_engine)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]
PHONE = "+8613900000009"
WAIT_MS = 20_000  # a bound against hanging, never a timing assertion


def on_loop(srv: Server, fn: Any) -> Any:
    """Run ``fn()`` in the server's event loop (the engine and the PBX live there) and return its result."""
    async def run() -> Any:
        return fn()

    assert srv.loop is not None
    return asyncio.run_coroutine_threadsafe(run(), srv.loop).result(10)


def test_conference_transfer_and_supervisor_monitoring_between_two_agents(core: App, browser: Any) -> None:  # noqa: F811
    world: World = build(core)
    ag1, bo1 = world.staff["ag1"], world.staff["bo1"]
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Staff, world.staff["sup1"]), "extension", "1900"))
    cid = dialer.create_campaign(core, name="流失客户挽回", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                 days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.mine)])
    model = CustomerModel(talk_mean_s=900.0, talk_sd_s=5.0, human_answer_min_s=0.5, human_answer_max_s=1.0)
    pbx = SimulatedPbx(model, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="browser", campaign_ids={cid}, sync_s=0.3)
    with serving_with_engine(core, pbx, engine) as srv:
        a = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(a)
        _login(a, srv.url, "ag1")
        a.wait_for_url("**/agent")
        a.click("#btn-ready")
        a.wait_for_selector("#statusbar[data-state='ready']")
        dialer.campaign_action(core, cid, "start")
        a.wait_for_selector("#call-card #call-controls", timeout=WAIT_MS)
        call_id = on_loop(srv, lambda: next(iter(engine.calls)))
        customer, agent1, agent2 = H.customer(call_id), H.agent(ag1), H.agent(bo1)
        assert on_loop(srv, lambda: pbx.hears(customer, agent1))

        b = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        _login(b, srv.url, "bo1")
        b.wait_for_url("**/agent")
        b.click("#btn-ready")
        b.wait_for_selector("#statusbar[data-state='ready']")

        # ag1 holds, then brings bo1 into a three-way conference from the call card
        a.click("#call-controls .ctl[data-kind='hold']")
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='hold']", timeout=WAIT_MS)
        assert on_loop(srv, lambda: pbx.hearing()[customer]) == {H.MOH}
        a.click("#call-controls .ctl[data-kind='mute']")  # the keypad refreshes the target list meanwhile
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='mute']", timeout=WAIT_MS)
        assert on_loop(srv, lambda: str(ag1) in pbx.muted)
        # a reload keeps both: the desk's status says what the call core carried out, not the browser's memory
        a.reload()
        a.wait_for_selector("#call-flags[data-held='yes'][data-muted='yes']", timeout=WAIT_MS)
        assert a.is_visible("#flag-held") and a.is_visible("#flag-muted")
        assert "保持" in a.inner_text("#flag-held") and "静音" in a.inner_text("#flag-muted")
        live = a.evaluate("fetch('/api/desk/status').then(r => r.json())")["contact"]
        assert (live["on_hold"], live["muted"]) == (True, True)
        a.click("#call-controls .ctl[data-kind='resume']")
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='resume']", timeout=WAIT_MS)
        a.wait_for_selector("#call-flags[data-held='no'][data-muted='yes']", timeout=WAIT_MS)
        assert not a.is_visible("#flag-held")
        a.click("#call-controls .ctl[data-kind='unmute']")
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='unmute']", timeout=WAIT_MS)
        a.wait_for_selector("#call-flags[data-held='no'][data-muted='no']", timeout=WAIT_MS)
        assert on_loop(srv, lambda: pbx.hearing()[customer]) != {H.MOH} and str(ag1) not in pbx.muted
        a.wait_for_selector(f"#ctl-target option[value='{bo1}'][data-state='ready']", state="attached",
                            timeout=WAIT_MS)
        a.select_option("#ctl-target", str(bo1))
        a.click("#call-controls .ctl[data-kind='conference']")
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='conference']", timeout=WAIT_MS)
        assert on_loop(srv, lambda: pbx.hears(agent2, customer) and pbx.hears(customer, agent2)
                       and pbx.hears(agent1, agent2))
        b.wait_for_selector("#call-card #call-controls", timeout=WAIT_MS)  # bo1's card for the same call
        _save(a, "agent-call-controls.png", ARTIFACTS)
        b.click("#call-controls .ctl[data-kind='conference_leave']")
        b.wait_for_selector("#ctl-status[data-state='done'][data-kind='conference_leave']", timeout=WAIT_MS)
        assert on_loop(srv, lambda: not pbx.hears(agent2, customer))
        b.click("#dispositions .disp >> nth=0")
        b.wait_for_selector("#closed", timeout=WAIT_MS)
        b.click("#btn-ready")
        b.wait_for_selector("#statusbar[data-state='ready']", timeout=WAIT_MS)

        # then the blind transfer to bo1
        a.click("#call-controls .ctl[data-kind='mute']")
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='mute']", timeout=WAIT_MS)
        a.wait_for_selector(f"#ctl-target option[value='{bo1}'][data-state='ready']", state="attached",
                            timeout=WAIT_MS)
        a.select_option("#ctl-target", str(bo1))
        a.click("#call-controls .ctl[data-kind='transfer']")
        a.wait_for_selector("#ctl-status[data-state='done'][data-kind='transfer']", timeout=WAIT_MS)
        b.wait_for_selector("#call-card #call-controls", timeout=WAIT_MS)
        a.wait_for_selector("#statusbar[data-state='wrap_up']", timeout=WAIT_MS)
        assert on_loop(srv, lambda: pbx.calls[call_id].room) == str(bo1)
        assert on_loop(srv, lambda: pbx.hears(customer, agent2) and not pbx.hears(customer, agent1))
        assert on_loop(srv, lambda: str(ag1) not in pbx.muted)  # unmuted when they let the call go

        # the supervisor monitors bo1's call from the wall board
        sup, who = H.supervisor(world.staff["sup1"]), agent2
        s = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        _login(s, srv.url, "sup1")
        s.wait_for_url("**/supervisor**")
        s.goto(srv.url + "/supervisor/wallboard")
        row = f"#wb-live tr[data-agent='{bo1}']"
        s.wait_for_selector(row, timeout=WAIT_MS)

        def press(mode: str) -> None:
            s.click(f"{row} button[data-mode='{mode}']")
            s.wait_for_selector(f"#wb-monitor-status[data-state='done'][data-mode='{mode}']", timeout=WAIT_MS)

        press("listen")
        assert on_loop(srv, lambda: pbx.hears(sup, customer) and pbx.hears(sup, who)
                       and not pbx.hears(customer, sup) and not pbx.hears(who, sup))
        press("whisper")
        assert on_loop(srv, lambda: pbx.hears(who, sup) and not pbx.hears(customer, sup))
        press("barge")
        assert on_loop(srv, lambda: pbx.hears(who, sup) and pbx.hears(customer, sup))
        _save(s, "wallboard-monitoring.png", ARTIFACTS)
        press("monitor_stop")
        assert on_loop(srv, lambda: sup not in pbx.hearing())
        assert not blocked
