"""Call controls through the call core (issue 13): hold, mute, DTMF, blind and warm transfer, consultation,
three-way conference, back to the IVR, supervisor monitoring. The harness of ``test_call_core`` (a fake database
and a fake PBX carrying out the core's commands depth first) with a fake of the port's ``CallControls``, the
decisions one by one, and a hypothesis machine interleaving controls with everything the dialler machine does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from callcenter.services.dialer import controls as K
from callcenter.services.dialer import core as C
from callcenter.services.dialer.core import AgentState
from callcenter.domain.events import ContactOpened
from tests.unit.test_call_core import DiallerMachine, Harness, of


@dataclass
class ControlHarness(Harness):
    held: set[str] = field(default_factory=set)
    muted: set[int] = field(default_factory=set)
    links: set[frozenset[int]] = field(default_factory=set)
    monitors: dict[int, tuple[int, str]] = field(default_factory=dict)
    dtmf: dict[str, str] = field(default_factory=dict)
    ivr: list[tuple[str, str]] = field(default_factory=list)
    answers: dict[int, tuple[bool, str]] = field(default_factory=dict)
    core_answered: set[int] = field(default_factory=set)
    refuse_controls: bool = False
    room: dict[str, int] = field(default_factory=dict)  # call id -> the agent room it is in
    next_request: int = 1
    # desk contacts of a hand-off opened for a further agent by a control (a transfer, a conference): the base
    # harness's ``contacts`` keeps the first agent reached, one a hand-off at most
    control_contacts: list[tuple[int, int, str]] = field(default_factory=list)  # (staff, ivr session, reason)

    def do(self, cmd: Any) -> Any:
        if (isinstance(cmd, C.ChangeAgentState) and isinstance(cmd.contact, C.OpenInboundContact)
                and cmd.reason != "ivr_handoff"):
            n = len(self.contacts)
            result = super().do(cmd)
            self.control_contacts += [(staff, ivr, cmd.reason) for staff, ivr in self.contacts[n:]]
            del self.contacts[n:]
            return result
        if isinstance(cmd, C.Connect) and self.pbx.get(cmd.call_id) == "connected":
            self.pbx[cmd.call_id] = "answered"  # a transfer: the call moves from one room to another
            self.held.discard(cmd.call_id)
        if isinstance(cmd, K.ControlAnswer):
            assert cmd.request_id not in self.core_answered, "a request answered twice"
            self.core_answered.add(cmd.request_id)
            self.answers.setdefault(cmd.request_id, (cmd.ok, cmd.reason))  # a PBX refusal noted first wins
            return None
        if isinstance(cmd, K.ControlCommand):
            undo = isinstance(cmd, (K.UnlinkRooms, K.StopMonitor, K.UnholdCall)) or (
                isinstance(cmd, K.MuteAgent) and not cmd.muted)
            if self.refuse_controls and not undo:
                kind = {K.HoldCall: "hold", K.MuteAgent: "mute", K.LinkRooms: "link", K.ToIvr: "to_ivr",
                        K.Monitor: "monitor", K.SendDtmf: "dtmf"}[type(cmd)]
                if cmd.request_id:
                    self.answers.setdefault(cmd.request_id, (False, "pbx_refused"))
                return K.ControlFailed(cmd.request_id, cmd.call_id, kind,
                                       f"sup{cmd.supervisor_id}" if isinstance(cmd, K.Monitor) else "")
            if isinstance(cmd, K.HoldCall):
                self.held.add(cmd.call_id)
            elif isinstance(cmd, K.UnholdCall):
                self.held.discard(cmd.call_id)
            elif isinstance(cmd, K.MuteAgent):
                (self.muted.add if cmd.muted else self.muted.discard)(cmd.staff_id)
            elif isinstance(cmd, K.SendDtmf):
                self.dtmf[cmd.call_id] = self.dtmf.get(cmd.call_id, "") + cmd.digits
            elif isinstance(cmd, K.LinkRooms):
                self.links.add(frozenset((cmd.staff_id, cmd.other_id)))
            elif isinstance(cmd, K.UnlinkRooms):
                self.links.discard(frozenset((cmd.staff_id, cmd.other_id)))
            elif isinstance(cmd, K.ToIvr):
                self.ivr.append((cmd.call_id, cmd.menu))
            elif isinstance(cmd, K.Monitor):
                self.monitors[cmd.supervisor_id] = (cmd.staff_id, cmd.mode)
            elif isinstance(cmd, K.StopMonitor):
                self.monitors.pop(cmd.supervisor_id, None)
            return None
        return super().do(cmd)

    def write(self, record: Any) -> None:
        if isinstance(record, C.HandoffStep) and self.handoffs[record.ivr_session_id].connected_to is not None:
            self.handoffs[record.ivr_session_id].connected_to = record.staff_id  # transferred to another agent
            return
        super().write(record)

    def control(self, call_id: str, staff_id: int, kind: str, **kw: Any) -> tuple[bool, str]:
        rid = self.next_request
        self.next_request += 1
        self.feed(K.ControlRequested(rid, call_id, staff_id, kind, **kw))
        return self.answers[rid]

    def talking(self, lead_call: str | None = None) -> tuple[str, int]:
        """A call answered and connected to an agent: (call id, agent)."""
        if lead_call is None:
            [lead_call, *_] = self.live("dialing")
        self.answer(lead_call)
        self.connected(lead_call)
        agent = self.core.calls[lead_call].agent_id
        assert agent is not None and self.rows[agent].state == "talking"
        return lead_call, agent


def started(agents: int = 3, auto_wrap_up_s: float | None = None) -> ControlHarness:
    h = ControlHarness(agents=agents, auto_wrap_up_s=auto_wrap_up_s)
    h.start()
    return h


def test_hold_resume_mute_and_keys_reach_the_pbx_and_a_second_hold_is_a_no_op() -> None:
    h = started(agents=1)
    call, agent = h.talking()
    assert h.control(call, agent, "hold") == (True, "")
    assert call in h.held and h.core.controls[call].held
    assert h.control(call, agent, "hold") == (True, "already")
    assert h.control(call, agent, "dtmf", digits="1") == (False, "on_hold")  # nobody hears keys on hold
    assert h.control(call, agent, "resume") == (True, "")
    assert call not in h.held
    assert h.control(call, agent, "mute") == (True, "")
    assert agent in h.muted
    assert h.control(call, agent, "dtmf", digits="12#") == (True, "")
    assert h.control(call, agent, "dtmf", digits="12;x") == (False, "bad_digits")
    assert h.dtmf[call] == "12#"
    h.ended(call)  # the customer hangs up while the agent is muted: unmuted for the next call
    assert agent not in h.muted and call not in h.core.controls
    assert h.rows[agent].state == "wrap_up"


def test_only_the_agent_on_the_call_controls_it() -> None:
    h = started(agents=2)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    assert h.control(call, other, "hold") == (False, "not_your_call")
    assert h.control("cc-999999999999", agent, "hold") == (False, "no_live_call")
    assert h.control(call, agent, "teleport") == (False, "unknown_control")


def test_a_blind_transfer_moves_the_call_to_the_ready_agent_who_gets_the_desk_contact() -> None:
    h = started(agents=3)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    busy = {agent} | {c.agent_id for c in h.core.calls.values() if c.agent_id is not None}
    target = next(a for a in h.rows if a not in busy and h.rows[a].state == "ready")
    assert h.control(call, agent, "transfer", target=agent) == (False, "no_such_agent")
    out = h.feed(K.ControlRequested(90, call, agent, "transfer", target=target))
    assert h.answers[90] == (True, "")
    assert of(out, C.Connect) == [C.Connect(call, target)]
    # the call stays with its agent until it has reached the target's room
    assert h.rows[agent].state == "talking" and h.rows[target].state == "reserved"
    assert h.control(call, agent, "hold") == (False, "transfer_in_progress")
    out = h.connected(call)
    assert h.rows[target].state == "talking" and h.rows[agent].state == "wrap_up"
    [opened] = [e for e in (c.event for c in of(out, C.Publish)) if isinstance(e, ContactOpened)]
    assert opened.staff_id == target and h.core.agents[agent].call_id is None
    h.ended(call, talk_s=30.0)
    assert h.rows[target].state == "wrap_up" and h.attempts[1].outcome == "human"


def test_a_transfer_the_pbx_cannot_carry_out_leaves_the_call_with_its_agent() -> None:
    h = started(agents=3)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    target = next(a for a in h.rows if a != agent and h.rows[a].state == "ready")
    h.fail_connect = True
    assert h.control(call, agent, "transfer", target=target) == (True, "")
    assert h.rows[agent].state == "talking" and h.rows[target].state == "ready"
    assert h.core.calls[call].agent_id == agent and not h.played.get(call)  # no safe-harbour prompt
    h.fail_connect = False
    assert h.control(call, agent, "hold") == (True, "")


def test_a_transfer_to_an_agent_not_ready_is_refused_and_the_call_stays() -> None:
    h = started(agents=2)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    h.rows[other].state = "paused"
    h.core.agents[other].state = AgentState.PAUSED
    assert h.control(call, agent, "transfer", target=other) == (False, "agent_not_ready")
    assert h.rows[agent].state == "talking" and h.core.calls[call].agent_id == agent


def test_warm_transfer_consults_with_the_customer_on_hold_then_hands_over() -> None:
    h = started(agents=2)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    assert h.rows[other].state == "ready"
    assert h.control(call, agent, "consult", target=other) == (True, "")
    assert call in h.held and frozenset((agent, other)) in h.links and h.rows[other].state == "reserved"
    assert h.control(call, agent, "resume") == (False, "consult_in_progress")
    assert h.control(call, agent, "consult_complete") == (True, "")
    assert not h.links and h.rows[agent].state == "talking"  # until the customer is in the other room
    h.connected(call)
    assert h.rows[agent].state == "wrap_up"
    assert h.rows[other].state == "talking" and call not in h.held and h.core.calls[call].agent_id == other


def test_a_consultation_the_database_refuses_links_no_rooms() -> None:
    """The consulted agent paused on the web (the core learns it at the next sync): the reservation is refused
    before any link is made, so no link is left behind and the customer is back."""
    h = started(agents=2)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    h.rows[other].state = "paused"
    out = h.feed(K.ControlRequested(50, call, agent, "consult", target=other))
    assert not of(out, K.LinkRooms) and not h.links and call not in h.held
    assert h.core.controls[call].consult is None and h.rows[other].state == "paused"


def test_a_cancelled_consultation_gives_the_customer_back_and_frees_the_consulted_agent() -> None:
    h = started(agents=2)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    assert h.rows[other].state == "ready"
    h.control(call, agent, "consult", target=other)
    assert h.control(call, agent, "consult_cancel") == (True, "")
    assert not h.links and call not in h.held and h.rows[other].state == "ready"
    assert h.rows[agent].state == "talking"


def test_a_three_way_conference_links_the_rooms_and_ends_with_the_call() -> None:
    h = started(agents=2)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    assert h.rows[other].state == "ready"
    out = h.feed(K.ControlRequested(7, call, agent, "conference", target=other))
    assert h.answers[7] == (True, "")
    assert frozenset((agent, other)) in h.links and call not in h.held
    assert h.rows[other].state == "talking"  # with the call's desk contact
    assert any(isinstance(c.event, ContactOpened) and c.event.staff_id == other for c in of(out, C.Publish))
    assert h.control(call, agent, "transfer", target=other) == (False, "conference_in_progress")
    assert h.control(call, other, "conference_leave") == (True, "")  # the second agent leaves
    assert not h.links and h.rows[other].state == "wrap_up" and h.rows[agent].state == "talking"
    h.rows[other].state = "ready"
    h.core.agents[other].state = AgentState.READY
    h.control(call, agent, "conference", target=other)
    h.ended(call)
    assert not h.links and h.rows[other].state == "wrap_up" and h.rows[agent].state == "wrap_up"


def test_back_to_the_ivr_at_a_menu_lets_the_agent_go() -> None:
    h = started(agents=1)
    call, agent = h.talking()
    assert h.control(call, agent, "transfer_ivr", menu="orders") == (True, "")
    assert h.ivr == [(call, "orders")] and h.rows[agent].state == "wrap_up"
    h.ended(call)
    assert h.attempts[1].outcome == "human"


def test_supervisors_listen_whisper_and_barge_one_call_at_a_time_until_it_ends() -> None:
    h = started(agents=1)
    call, agent = h.talking()
    assert h.control(call, 900, "listen") == (False, "no_supervisor_phone")
    assert h.control(call, 900, "listen", phone="PJSIP/1900") == (True, "")
    assert h.monitors == {900: (agent, "listen")}
    assert h.control(call, 900, "whisper", phone="PJSIP/1900") == (True, "")
    assert h.monitors == {900: (agent, "whisper")}
    assert h.control(call, 901, "barge", phone="PJSIP/1901") == (True, "")
    assert h.control(call, 901, "monitor_stop") == (True, "")
    assert h.monitors == {900: (agent, "whisper")}
    h.ended(call)
    assert h.monitors == {} and h.core.monitoring == {}


def test_a_refused_hold_or_link_is_undone() -> None:
    h = started(agents=2)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    call, agent = h.talking()
    other = next(a for a in h.rows if a != agent)
    h.refuse_controls = True
    assert h.control(call, agent, "hold") == (False, "pbx_refused")
    assert not h.core.controls[call].held
    assert h.rows[other].state == "ready"
    if True:
        assert h.control(call, agent, "conference", target=other) == (False, "pbx_refused")
        assert h.core.controls[call].conference is None and h.rows[other].state == "wrap_up"


def test_a_hand_off_is_transferred_like_an_outbound_call() -> None:
    h = started(agents=2)
    h.core.campaigns[1].pacer = __import__("tests.unit.test_call_core", fromlist=["RecordingPacer"]).RecordingPacer(0)
    for c in h.live("dialing"):
        h.failed(c, "busy")
    h.tick(1.0)
    call = h.hand_off(client_id=5)
    h.tick(1.0)
    h.park(call)
    agent = h.core.inbound[call].agent_id
    assert agent is not None
    h.connected(call)
    other = next(a for a in h.rows if a != agent)
    assert h.rows[other].state == "ready"
    assert h.control(call, agent, "transfer", target=other) == (True, "")
    h.connected(call)
    assert h.rows[other].state == "talking" and h.rows[agent].state == "wrap_up"
    assert h.contacts == [(agent, 700)] and h.control_contacts == [(other, 700, "transfer")]
    h.ended(call)
    assert h.handoffs[700].ended == "completed"


# --- properties: controls interleaved with the dialler's own life ------------------------------------------------


class ControlsMachine(DiallerMachine):
    """The dialler machine with agents and supervisors pressing every control at random moments."""

    @initialize(agents=st.integers(2, 4), mode=st.sampled_from(["progressive", "ratio"]),
                wrap=st.sampled_from([None, 3.0]))
    def setup(self, agents: int, mode: str, wrap: float | None) -> None:
        self.h = ControlHarness(agents=agents, leads=12, mode=mode, auto_wrap_up_s=wrap)
        self.servers = [""]
        self.h.start()

    def _press(self, i: int, kind: str, who: int | None, tgt: int, sup: int) -> None:
        h = self.h
        assert isinstance(h, ControlHarness)
        for call_id in h.live("connecting"):  # calls on their way reach their agents first: something to control
            h.connected(call_id)
        live = h.live("connected")
        if not live:
            return
        call_id = live[i % len(live)]
        call = h.core.calls.get(call_id) or h.core.inbound.get(call_id)
        if who is None:
            ctl = h.core.controls.get(call_id)
            partner = ctl.conference if ctl is not None else None
            who = partner if kind == "conference_leave" and partner and i % 2 else (
                call.agent_id if call is not None and call.agent_id is not None else 100)
        target = 100 + tgt
        ready = [a.staff_id for a in h.core.ready_agents(None)]
        if who == (call.agent_id if call is not None else None) and ready and tgt % 4:
            target = ready[tgt % len(ready)]  # mostly an agent who can take it
        ctl = h.core.controls.get(call_id)
        if kind == "conference" and ctl is not None and ctl.consult is not None and tgt % 2:
            target = ctl.consult  # the consulted agent joins the customer
        ok, _ = h.control(call_id, who, kind, target=target, digits="5", menu="orders", phone=f"PJSIP/{sup}")
        assert isinstance(ok, bool)

    @rule(i=st.integers(0, 50), kind=st.sampled_from([k for k in K.CONTROL_KINDS if k not in K.MONITOR_KINDS]),
          tgt=st.integers(0, 3))
    def the_agent_presses_a_control(self, i: int, kind: str, tgt: int) -> None:
        self._press(i, kind, None, tgt, 0)

    @rule(i=st.integers(0, 50), kind=st.sampled_from(K.CONTROL_KINDS), staff=st.integers(0, 3), tgt=st.integers(0, 3))
    def someone_else_presses_a_control(self, i: int, kind: str, staff: int, tgt: int) -> None:
        self._press(i, kind, 100 + staff, tgt, 900)

    @rule(i=st.integers(0, 50), kind=st.sampled_from(K.MONITOR_KINDS), sup=st.sampled_from([900, 901]))
    def a_supervisor_monitors(self, i: int, kind: str, sup: int) -> None:
        self._press(i, kind, sup, 0, sup)

    @rule(refuse=st.booleans())
    def pbx_refuses_controls(self, refuse: bool) -> None:
        assert isinstance(self.h, ControlHarness)
        self.h.refuse_controls = refuse

    @invariant()
    def no_agent_holds_two_calls(self) -> None:
        core = self.h.core
        holders = [c.agent_id for c in core.calls.values() if c.agent_id is not None]
        holders += [c.agent_id for c in core.inbound.values() if c.agent_id is not None]
        assert len(holders) == len(set(holders))
        partners = {p for ctl in core.controls.values() for p in (ctl.consult, ctl.conference, ctl.transfer_to)
                    if p is not None}
        held = [a.call_id for a in core.agents.values() if a.call_id is not None and a.staff_id not in partners]
        assert len(held) == len(set(held))
        for ctl in core.controls.values():  # a partner is one agent on one call, never also on a call of its own
            assert not (ctl.consult and ctl.conference)
            for p in (ctl.consult, ctl.conference, ctl.transfer_to):
                assert p is None or p not in holders

    @invariant()
    def the_pbx_matches_the_core(self) -> None:
        h = self.h
        assert isinstance(h, ControlHarness)
        core = h.core
        linked = {frozenset((c.agent_id, p)) for cid, ctl in core.controls.items()
                  for p in (ctl.consult, ctl.conference) if p is not None
                  for c in [core.calls.get(cid) or core.inbound.get(cid)] if c is not None and c.agent_id is not None}
        assert h.links == linked
        assert {s: a for s, (a, _m) in h.monitors.items()}.keys() == core.monitoring.keys()

    def teardown(self) -> None:
        h = getattr(self, "h", None)
        super().teardown()
        if h is None:
            return
        assert isinstance(h, ControlHarness)
        assert not h.core.controls and not h.core.monitoring
        assert not h.links and not h.muted and not h.monitors  # every control ended with its call
        assert h.core_answered == set(range(1, h.next_request))  # every request answered once
        reached = {ivr for _, ivr in h.contacts}
        for _staff, ivr, reason in h.control_contacts:  # a further agent only on a hand-off an agent took
            assert ivr in reached and reason in ("transfer", "conference")


TestControlsMachine = ControlsMachine.TestCase
TestControlsMachine.settings = settings(max_examples=120, stateful_step_count=40, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
