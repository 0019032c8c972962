"""The dialler's call core (``callcenter.services.dialer.core``) without a database or an event loop: a virtual clock, a
fake database and a fake PBX that carry out its commands the way ``DialerEngine`` does (depth first: each
command's result goes back to the core before the next command), plus hypothesis properties over generated
event sequences. Inbound calls (IVR hand-offs waiting in the fake database, parked on the fake PBX) go through
the same core: the properties hold counting them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from callcenter.services.dialer import core as C
from callcenter.services.dialer.core import (
    MACHINE_PROMPT,
    SAFE_HARBOUR_PROMPT,
    AgentState,
    CallCore,
    CallState,
    CoreConfig,
)
from callcenter.domain.pacing import AttemptOutcome, DialerState
from callcenter.domain.campaigns import AGENT_TRANSITIONS
from callcenter.domain.events import (
    AgentStateChanged,
    AttemptEnded,
    CallbackPlaced,
    ContactOpened,
    DialerBoard,
    PreviewOffered,
)
from callcenter.ports.telephony import AgentJoined, AgentLeft, Answered, Connected, Ended, Failed

BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


@dataclass
class Row:
    """An agent session row of the fake database."""

    staff_id: int
    session_id: int
    state: str
    since: datetime
    campaign_id: int = 1
    ended: bool = False
    preview_lead_id: int | None = None
    preview_action: str | None = None


@dataclass
class Attempt:
    id: int
    lead_id: int
    answered: bool = False
    connected: bool = False
    outcome: str | None = None
    lead_outcome: str | None = None
    callback_id: int | None = None


@dataclass
class HandoffRow:
    """An IVR session handed off, in the fake database."""

    ivr_session_id: int
    since: datetime
    client_id: int | None = None
    connected_to: int | None = None
    ended: str | None = None
    callbacks: int = 0


class RecordingPacer:
    mode = "progressive"

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.outcomes: list[AttemptOutcome] = []
        self.states: list[DialerState] = []

    def record(self, outcome: AttemptOutcome) -> None:
        self.outcomes.append(outcome)

    def calls_to_place(self, state: DialerState) -> int:
        self.states.append(state)
        return self.n


@dataclass
class Harness:
    """The core, a virtual clock, and fakes of the database and the PBX carrying out its commands."""

    agents: int = 2
    leads: int = 20
    mode: str = "progressive"
    amd_policy: str = "human"
    leave_message: bool = False
    auto_wrap_up_s: float | None = 5.0
    now: float = 0.0
    core: CallCore = field(init=False)
    rows: dict[int, Row] = field(default_factory=dict)
    lead_status: dict[int, str] = field(default_factory=dict)
    attempts: dict[int, Attempt] = field(default_factory=dict)
    pbx: dict[str, str] = field(default_factory=dict)  # call id -> dialing | answered | connecting | connected | closing
    commands: list[Any] = field(default_factory=list)
    published: list[Any] = field(default_factory=list)
    played: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)
    refuse_originate: bool = False
    fail_connect: bool = False
    connect_gone: bool = False  # the PBX no longer knows the calls it is asked to connect (they have ended)
    callbacks: tuple[C.CallbackFacts, ...] = ()
    web_moved: bool = False  # the web changed a row since the core last synced
    handoffs: dict[int, HandoffRow] = field(default_factory=dict)
    contacts: list[tuple[int, int]] = field(default_factory=list)  # (staff id, ivr session id) opened
    phones_answer: bool = True  # an agent phone that is dialled joins its room (AgentJoined) once the round is done
    agent_server: dict[int, str] = field(default_factory=dict)  # staff id -> the PBX server its room is on
    joining: list[int] = field(default_factory=list)
    call_server: dict[str, str] = field(default_factory=dict)  # call id -> the server it was answered on
    _depth: int = 0

    def __post_init__(self) -> None:
        self.core = CallCore(CoreConfig(dialer_id="t", auto_wrap_up_s=self.auto_wrap_up_s))
        for i in range(self.agents):
            staff = 100 + i
            self.rows[staff] = Row(staff, 500 + i, "ready", BASE + timedelta(seconds=i))
        for lead in range(1, self.leads + 1):
            self.lead_status[lead] = "new"

    def wall(self) -> datetime:
        return BASE + timedelta(seconds=self.now)

    # --- feeding the core, carrying out its commands -------------------------------------------------------

    def feed(self, event: Any) -> list[Any]:
        self._depth += 1
        try:
            out = self.core.handle(event, self.now, self.wall())
            done = list(out)
            for command in out:
                self.commands.append(command)
                result = self.do(command)
                if result is not None:
                    done += self.feed(result)
        finally:
            self._depth -= 1
        while self._depth == 0 and self.joining:  # the PBX: a dialled agent phone joins its room afterwards
            staff = self.joining.pop(0)
            done += self.feed(AgentJoined(str(staff), self.now, server=self.agent_server.get(staff, "")))
        return done

    def tick(self, dt: float = 0.0) -> list[Any]:
        self.now += dt
        return self.feed(C.Tick())

    def start(self) -> None:
        self.tick()  # sync: the phones are dialled; nothing is paced on them until they join their rooms
        assert not of(self.commands, C.ClaimLeads)
        assert self.core.campaigns and all(a.phone_up for a in self.core.agents.values())
        self.tick()  # the next round (a sync, as a phone has joined) offers previews and paces on the joined phones

    def synced(self) -> C.Synced:
        self.web_moved = False
        return C.Synced(
            (C.CampaignFacts(1, "running", self.mode, "", self.amd_policy, self.leave_message),),
            tuple(C.AgentFacts(r.staff_id, r.session_id, r.campaign_id, f"PJSIP/{r.staff_id}", r.state, r.since,
                               r.preview_lead_id, r.preview_action) for r in self.rows.values() if not r.ended),
            self.callbacks,
            handoffs=tuple(C.HandoffFacts(r.ivr_session_id, r.client_id, r.since, "zh-CN", "+8613900000009")
                           for r in self.handoffs.values() if r.ended is None and r.connected_to is None))

    def hand_off(self, client_id: int | None = None) -> str:
        """A caller presses "agent" in the IVR: the hand-off is in the database (the core learns at a sync)."""
        ivr = 700 + len(self.handoffs)
        self.handoffs[ivr] = HandoffRow(ivr, self.wall(), client_id)
        return f"cc-h{ivr:012d}"

    def park(self, call_id: str) -> list[Any]:
        """The PBX reports the hand-off's channel waiting in the dialplan."""
        assert self.pbx.get(call_id) in ("expected", None)
        self.pbx[call_id] = "answered"
        return self.feed(Answered(call_id, self.now))

    def new_call(self, lead: int, agent_id: int | None = None, callback_id: int | None = None) -> C.NewCall:
        self.lead_status[lead] = "in_progress"
        aid = len(self.attempts) + 1
        self.attempts[aid] = Attempt(aid, lead, callback_id=callback_id)
        return C.NewCall(f"cc-{aid:012d}", aid, 1, lead, None, f"+86139{lead:08d}", 1, agent_id, callback_id)

    def move(self, row: Row, event: str) -> bool:
        new = AGENT_TRANSITIONS.get((row.state, event))
        if new is None:
            return False
        row.state, row.since = new, self.wall()
        return True

    def write(self, record: Any) -> None:
        if isinstance(record, C.FinishAttempt):
            attempt = self.attempts[record.attempt_id]
            assert attempt.outcome is None, "an attempt finished twice"
            attempt.outcome, attempt.lead_outcome = str(record.outcome), record.lead_outcome
            self.lead_status[attempt.lead_id] = "done"
        elif isinstance(record, C.RecordAnswered):
            self.attempts[record.attempt_id].answered = True
        elif isinstance(record, C.RecordConnected):
            self.attempts[record.attempt_id].connected = True
        elif isinstance(record, C.HandoffStep):
            row = self.handoffs[record.ivr_session_id]
            assert record.step == "agent_connected" and row.connected_to is None
            row.connected_to = record.staff_id
        elif isinstance(record, C.EndHandoff):
            row = self.handoffs[record.ivr_session_id]
            assert row.ended is None, "a hand-off ended twice"
            row.ended = record.reason
        elif isinstance(record, C.HandoffCallback):
            self.handoffs[record.ivr_session_id].callbacks += 1
        elif isinstance(record, C.MissCallback):  # no longer pending: the next sync does not bring it again
            self.callbacks = tuple(cb for cb in self.callbacks if cb.id != record.callback_id)

    def do(self, cmd: Any) -> Any:
        if isinstance(cmd, C.Sync):
            return self.synced()
        if isinstance(cmd, C.Resume):
            return C.Resumed(cmd.phase)
        if isinstance(cmd, C.Publish):
            self.published.append(cmd.event)
            return None
        if isinstance(cmd, C.LoginPhone):
            if self.phones_answer:
                self.joining.append(cmd.staff_id)
            return C.PhoneLogin(cmd.staff_id, True)
        if isinstance(cmd, C.LogoutPhone):
            return None
        if isinstance(cmd, C.ClaimLeads):
            free = [lead for lead, status in self.lead_status.items() if status == "new"][:cmd.n]
            return C.LeadsClaimed(cmd.campaign_id, cmd.n, tuple(self.new_call(lead) for lead in free))
        if isinstance(cmd, C.Originate):
            if self.refuse_originate:
                return C.OriginateRefused(cmd.call_id, "failed", False, "refused")
            self.pbx[cmd.call_id] = "dialing"
            return C.OriginateAccepted(cmd.call_id)
        if isinstance(cmd, C.Connect):
            assert self.pbx.get(cmd.call_id) == "answered", "connect of a call that is not answered and waiting"
            on, room = self.call_server.get(cmd.call_id, ""), self.agent_server.get(cmd.staff_id, "")
            assert not on or not room or on == room, f"call on {on} moved into a room on {room}"
            if self.fail_connect:
                return C.ConnectFailed(cmd.call_id)
            if self.connect_gone:
                return C.ConnectFailed(cmd.call_id, gone=True)
            self.pbx[cmd.call_id] = "connecting"
            return None
        if isinstance(cmd, C.Play):
            self.played.setdefault(cmd.call_id, []).append((cmd.prompt, self.now))
            self.pbx[cmd.call_id] = "closing"
            return None
        if isinstance(cmd, C.Hangup):
            self.pbx[cmd.call_id] = "closing"
            return None
        if isinstance(cmd, (C.RecordAnswered, C.RecordConnected, C.FinishAttempt, C.CompleteDisposition,
                            C.MissCallback, C.HandoffStep, C.EndHandoff, C.HandoffCallback)):
            self.write(cmd)
            return None
        if isinstance(cmd, C.ExpectInbound):
            self.pbx.setdefault(cmd.call_id, "expected")  # the caller is held; the PBX reports it (``park``)
            return None
        if isinstance(cmd, C.ChangeAgentState):
            for record in cmd.records:
                self.write(record)
            row = self.rows[cmd.staff_id]
            if row.ended:
                return C.AgentChanged(cmd.staff_id, cmd.event, False, None, None, cmd.reason, cmd.attempt_id)
            applied = row.state == cmd.expected and self.move(row, cmd.event)
            contact_id = None
            if cmd.contact is not None:  # open_contact: a ready agent is moved on to talking
                if row.state == "ready":
                    self.move(row, "reserve")
                if row.state == "reserved":
                    self.move(row, "connect")
                if isinstance(cmd.contact, C.OpenInboundContact):
                    contact_id = 8000 + cmd.contact.ivr_session_id
                    self.contacts.append((cmd.staff_id, cmd.contact.ivr_session_id))
                else:
                    contact_id = 9000 + cmd.contact.attempt_id
            return C.AgentChanged(cmd.staff_id, cmd.event, applied, row.state, row.since, cmd.reason, cmd.attempt_id,
                                  contact_id)
        if isinstance(cmd, C.OfferPreviews):
            offers = []
            exhausted = False
            for ref in cmd.agents:
                row = self.rows[ref.staff_id]
                free = [lead for lead, status in self.lead_status.items() if status == "new"]
                if exhausted or row.state != ref.expected or not free:
                    exhausted = exhausted or not free
                    offers.append(C.PreviewOffer(ref.staff_id, None, row.state, row.since))
                    continue
                self.lead_status[free[0]] = "in_progress"
                row.preview_lead_id = free[0]
                self.move(row, "reserve")
                offers.append(C.PreviewOffer(ref.staff_id, C.LeadFacts(free[0], None, "客户", "+8613900000001", 1),
                                             row.state, row.since))
            return C.PreviewsOffered(cmd.campaign_id, tuple(offers))
        if isinstance(cmd, C.SkipPreview):
            row = self.rows[cmd.staff_id]
            row.preview_lead_id = row.preview_action = None
            self.lead_status[cmd.lead_id] = "skipped"  # back in the hopper later (the campaign's skip delay)
            applied = self.move(row, "release")
            return C.AgentChanged(cmd.staff_id, "release", applied, row.state, row.since, "preview_skip")
        if isinstance(cmd, C.DialPreview):
            row = self.rows[cmd.staff_id]
            row.preview_lead_id = row.preview_action = None
            if self.lead_status.get(cmd.lead_id) != "in_progress":
                return C.PreviewDialled(cmd.staff_id, None)
            return C.PreviewDialled(cmd.staff_id, self.new_call(cmd.lead_id, agent_id=cmd.staff_id))
        if isinstance(cmd, C.PlaceCallback):
            row = self.rows[cmd.staff_id]
            if row.state != cmd.expected or cmd.callback.lead_id is None:
                return C.CallbackResult(cmd.staff_id, cmd.callback.id, None, row.state, row.since)
            self.move(row, "reserve")
            call = self.new_call(cmd.callback.lead_id, agent_id=cmd.staff_id, callback_id=cmd.callback.id)
            return C.CallbackResult(cmd.staff_id, cmd.callback.id, call, row.state, row.since)
        raise AssertionError(f"unexpected command {cmd!r}")

    # --- the PBX side ----------------------------------------------------------------------------------------

    def answer(self, call_id: str, amd: Any = "human", server: str = "") -> list[Any]:
        assert self.pbx[call_id] == "dialing"
        self.pbx[call_id] = "answered"
        self.answered_at[call_id] = self.now
        self.call_server[call_id] = server
        return self.feed(Answered(call_id, self.now, amd, server=server))

    def connected(self, call_id: str) -> list[Any]:
        assert self.pbx[call_id] == "connecting"
        self.pbx[call_id] = "connected"
        return self.feed(Connected(call_id, self.now, "x"))

    def ended(self, call_id: str, talk_s: float | None = None) -> list[Any]:
        self.pbx.pop(call_id)
        return self.feed(Ended(call_id, self.now, 16, "Normal Clearing", talk_s))

    def failed(self, call_id: str, reason: Any = "busy") -> list[Any]:
        assert self.pbx.pop(call_id) == "dialing"
        return self.feed(Failed(call_id, self.now, reason, 17 if reason == "busy" else None))

    def live(self, state: str) -> list[str]:
        return sorted(c for c, s in self.pbx.items() if s == state)


def of(commands: list[Any], kind: type) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


# --- decisions, one by one -----------------------------------------------------------------------------------


def test_progressive_dials_one_call_per_ready_agent_and_routes_the_answer_to_the_longest_idle() -> None:
    h = Harness(agents=2)
    h.start()
    calls = h.live("dialing")
    assert len(calls) == 2 and len(of(h.commands, C.ClaimLeads)) == 1
    h.now = 3.0
    out = h.answer(calls[1])
    [reserve] = [c for c in of(out, C.ChangeAgentState) if c.event == "reserve"]
    assert reserve.staff_id == 100 and reserve.expected == AgentState.READY  # idle since BASE: the longest
    assert [type(r) for r in reserve.records] == [C.RecordAnswered]  # the answer is written with the reserve
    assert of(out, C.Connect) == [C.Connect(calls[1], 100)]
    assert h.core.calls[calls[1]].state == CallState.CONNECTING
    out = h.connected(calls[1])
    [connect] = of(out, C.ChangeAgentState)
    assert connect.event == "connect" and connect.contact == C.OpenContact(None, 2, 2, 1, 1)
    assert [type(r) for r in connect.records] == [C.RecordConnected]
    events = [c.event for c in of(out, C.Publish)]
    assert AgentStateChanged(100, "talking", "call", h.wall().isoformat(), 2) in events
    assert ContactOpened(100, 9002, None, 2, 1) in events
    assert h.rows[100].state == "talking"


def test_no_agent_within_abandon_after_s_hears_the_safe_harbour_prompt() -> None:
    h = Harness(agents=1, leads=1)
    h.start()
    [call] = h.live("dialing")
    h.rows[100].state = "paused"  # the agent paused on the web
    h.web_moved = True
    h.tick(1.0)  # sync: the core learns it
    h.answer(call)
    assert h.core.calls[call].state == CallState.WAITING
    assert h.core.next_deadline() <= h.now + 2.0
    assert not of(h.tick(1.99), C.Play)
    out = h.tick(0.01)
    assert of(out, C.Play) == [C.Play(call, SAFE_HARBOUR_PROMPT, or_hangup=True)]
    out = h.ended(call)
    [finish] = of(out, C.FinishAttempt)
    assert finish.outcome == C.Outcome.ABANDONED and finish.abandoned
    assert AttemptEnded(1, 1, 1, "abandoned", True) in [c.event for c in of(out, C.Publish)]
    assert h.core.campaigns[1].abandoned == 1


@pytest.mark.parametrize(("amd", "policy", "leave", "expected"), [
    ("machine", "human", False, C.Hangup),
    ("machine", "human", True, C.Play),
    ("notsure", "machine", False, C.Hangup),
])
def test_answering_machine_is_hung_up_on_or_left_a_message(amd: str, policy: str, leave: bool,
                                                            expected: type) -> None:
    h = Harness(agents=1, amd_policy=policy, leave_message=leave)
    h.start()
    [call] = h.live("dialing")
    out = h.answer(call, amd)
    assert not of(out, C.ChangeAgentState) and len(of(out, expected)) == 1
    if expected is C.Play:
        assert of(out, C.Play)[0].prompt == MACHINE_PROMPT
    out = h.ended(call)
    assert of(out, C.FinishAttempt)[0].outcome == C.Outcome.MACHINE
    assert h.rows[100].state == "ready"


def test_notsure_is_a_person_by_default() -> None:
    h = Harness(agents=1)
    h.start()
    [call] = h.live("dialing")
    assert of(h.answer(call, "notsure"), C.Connect)


def test_outcomes_are_fed_to_the_pacer_but_lost_and_refused_are_not() -> None:
    h = Harness(agents=3)
    h.start()
    pacer = RecordingPacer()
    h.core.campaigns[1].pacer = pacer
    busy, lost, human = h.live("dialing")
    h.now = 4.0
    h.failed(busy, "busy")
    h.failed(lost, "lost")
    h.now = 6.0
    h.answer(human)
    h.now = 7.0
    h.connected(human)
    h.now = 40.0
    out = h.ended(human, talk_s=33.0)
    assert [(o.kind, o.ring_s, o.talk_s, o.abandoned) for o in pacer.outcomes] == [
        ("busy", 4.0, None, False), ("human", 6.0, 33.0, False)]
    assert [c.event for c in of(out, C.ChangeAgentState)] == ["hangup"]  # the agent goes to wrap-up with it
    h.refuse_originate = True
    pacer.n = 1
    h.tick(1.0)
    assert h.attempts[4].outcome == "failed" and len(pacer.outcomes) == 2
    assert pacer.states and all(isinstance(s, DialerState) for s in pacer.states)


def test_auto_wrap_up_after_its_deadline_completes_the_disposition() -> None:
    h = Harness(agents=1, auto_wrap_up_s=5.0)
    h.start()
    [call] = h.live("dialing")
    h.answer(call)
    h.connected(call)
    h.now = 30.0
    h.ended(call, talk_s=30.0)
    assert h.rows[100].state == "wrap_up" and h.core.next_deadline() <= 35.0
    h.now = 34.9
    assert not [c for c in of(h.feed(C.Tick()), C.ChangeAgentState) if c.event == "ready"]
    h.now = 35.0
    [ready] = [c for c in of(h.feed(C.Tick()), C.ChangeAgentState) if c.event == "ready"]
    assert ready.reason == "auto_wrap_up" and ready.records == (C.CompleteDisposition(call),)
    assert h.rows[100].state == "ready"


def test_an_agent_back_from_wrap_up_takes_the_waiting_call_in_the_same_round() -> None:
    """The auto wrap-up's answer comes back after the same tick reserved the agent again: it must not undo that."""
    h = Harness(agents=1, mode="ratio", leads=2, auto_wrap_up_s=5.0)
    h.start()
    first, second = h.live("dialing")
    h.answer(first)
    h.connected(first)
    h.now = 10.0
    h.ended(first, talk_s=10.0)  # wrap-up until 15.0
    h.now = 14.0
    h.answer(second)
    assert h.core.calls[second].state == CallState.WAITING
    out = h.tick(1.0)
    assert [(c.event, c.expected) for c in of(out, C.ChangeAgentState)] == [
        ("ready", AgentState.WRAP_UP), ("reserve", AgentState.READY)]
    assert of(out, C.Connect) == [C.Connect(second, 100)]
    agent = h.core.agents[100]
    assert (agent.state, agent.call_id, agent.pending) == (AgentState.RESERVED, second, 0)
    assert h.rows[100].state == "reserved"


def test_a_refused_reservation_sends_the_call_to_the_next_agent() -> None:
    h = Harness(agents=2, leads=1)
    h.start()
    [call] = h.live("dialing")
    h.rows[100].state = "paused"  # the web paused the longest-idle agent; the core has not synced yet
    out = h.answer(call)
    reserves = [c.staff_id for c in of(out, C.ChangeAgentState) if c.event == "reserve"]
    assert reserves == [100, 101] and of(out, C.Connect) == [C.Connect(call, 101)]
    assert h.core.agents[100].state == AgentState.PAUSED  # the row's state, taken
    assert h.rows[101].state == "reserved"


def test_connect_failure_releases_the_agent_and_hands_the_call_to_another() -> None:
    h = Harness(agents=2, leads=1)
    h.start()
    [call] = h.live("dialing")
    h.fail_connect = True
    out = h.answer(call)
    assert [c.staff_id for c in of(out, C.Connect)] == [100, 101]  # the first fails, then the next one too
    assert [(c.staff_id, c.event) for c in of(out, C.ChangeAgentState)] == [
        (100, "reserve"), (100, "release"), (101, "reserve"), (101, "release")]
    assert not any(a.phone_up for a in h.core.agents.values()) and h.rows[100].state == h.rows[101].state == "ready"
    assert h.core.calls[call].state == CallState.WAITING and h.core.calls[call].agent_id is None
    h.fail_connect = False
    out = h.feed(C.PhoneLogin(101, True))  # dialled again: not up until it has joined its room
    assert not of(out, C.Connect)
    out = h.feed(AgentJoined("101", h.now))  # 101's phone is back
    assert of(out, C.Connect) == [C.Connect(call, 101)]
    h.feed(AgentLeft("101", h.now))
    assert not h.core.agents[101].phone_up


def test_a_call_gone_from_the_pbx_is_not_offered_to_every_agent_in_turn_and_ends_at_its_end_event() -> None:
    h = Harness(agents=3, leads=1)
    h.start()
    [call] = h.live("dialing")
    h.connect_gone = True  # the customer hung up; the PBX's Ended is still on its way to the dialler
    out = h.answer(call)
    assert of(out, C.Connect) == [C.Connect(call, 100)]  # one try only
    assert [(c.staff_id, c.event) for c in of(out, C.ChangeAgentState)] == [(100, "reserve"), (100, "release")]
    assert all(a.phone_up for a in h.core.agents.values())  # nobody's phone is blamed
    assert h.rows[100].state == "ready" and h.core.calls[call].state == CallState.WAITING
    assert not of(h.tick(1.0), C.Connect)  # still not offered while it waits for its end
    out = h.ended(call)
    [finish] = of(out, C.FinishAttempt)
    assert finish.outcome == C.Outcome.HUMAN and finish.lead_outcome == "abandoned" and call not in h.core.calls
    assert not of(out, C.Connect) and not of(out, C.Play)


def test_preview_offer_then_skip_then_dial() -> None:
    h = Harness(agents=1, mode="preview", leads=3)
    h.start()
    [offers] = of(h.commands, C.OfferPreviews)
    assert offers.agents == (C.AgentRef(100, 500, AgentState.READY),)
    assert [e for e in h.published if isinstance(e, PreviewOffered)] == [
        PreviewOffered(100, 1, 1, None, "客户", "+8613900000001", 1)]
    assert not of(h.commands, C.ClaimLeads) and h.rows[100].state == "reserved"
    h.rows[100].preview_action = "skip"
    out = h.tick(1.0)
    assert of(out, C.SkipPreview) == [C.SkipPreview(100, 500, 1, 1)]
    assert [(c.event.state, c.event.reason) for c in of(out, C.Publish) if isinstance(c.event, AgentStateChanged)] == [
        ("ready", "preview_skip"), ("reserved", "preview")]  # released, then shown the next lead at once
    assert h.rows[100].state == "reserved" and h.rows[100].preview_lead_id == 2
    assert h.core.agents[100].preview_lead_id == 2
    lead = h.rows[100].preview_lead_id
    h.rows[100].preview_action = "dial"
    out = h.tick(1.0)
    assert of(out, C.DialPreview) == [C.DialPreview(100, 500, lead, 1)]
    [originate] = of(out, C.Originate)
    call = h.core.calls[originate.call_id]
    assert call.agent_id == 100 and h.core.agents[100].call_id == call.call_id
    out = h.answer(call.call_id)
    assert of(out, C.Connect) == [C.Connect(call.call_id, 100)] and not of(out, C.ChangeAgentState)


def test_preview_call_whose_agent_cannot_take_it_is_handed_to_a_ready_agent() -> None:
    h = Harness(agents=2, mode="preview", leads=1)
    h.start()
    first = next(r for r in h.rows.values() if r.preview_lead_id is not None)
    other = next(r for r in h.rows.values() if r is not first)
    first.preview_action = "dial"
    h.tick(1.0)
    [call_id] = h.live("dialing")
    h.core.agents[first.staff_id].state = AgentState.PAUSED  # e.g. the sync saw the web pause them
    out = h.answer(call_id)
    assert [c.staff_id for c in of(out, C.ChangeAgentState) if c.event == "reserve"] == [other.staff_id]
    assert of(out, C.Connect) == [C.Connect(call_id, other.staff_id)]


def test_callbacks_reserve_their_agent_first_and_expire_after_the_grace() -> None:
    h = Harness(agents=2, leads=0)
    h.callbacks = (C.CallbackFacts(7, 1, 5, BASE, agent_only=True, owner_id=101),
                   C.CallbackFacts(8, 1, 6, BASE - timedelta(hours=3)))
    h.lead_status.update({5: "done", 6: "done"})
    h.start()
    [place] = of(h.commands, C.PlaceCallback)
    assert place.staff_id == 101 and place.expected == AgentState.READY  # the owner, not the longest idle
    assert of(h.commands, C.MissCallback) == [C.MissCallback(8)]
    assert CallbackPlaced(101, 7, 5, 1, 1) in h.published
    [call_id] = h.live("dialing")
    assert h.core.calls[call_id].callback_id == 7 and h.rows[101].state == "reserved"


def test_the_wall_board_is_published_when_it_changes() -> None:
    h = Harness(agents=1)
    h.start()
    boards = [e for e in h.published if isinstance(e, DialerBoard)]
    assert len(boards) == 1 and boards[0].in_flight == 0  # the first round: the phone is being dialled
    h.tick(1.0)
    boards = [e for e in h.published if isinstance(e, DialerBoard)]
    assert len(boards) == 2 and boards[1].in_flight == 1
    h.tick(1.0)
    assert len([e for e in h.published if isinstance(e, DialerBoard)]) == 2  # unchanged: not sent again


def test_an_agent_phone_that_never_joins_its_room_gets_no_call() -> None:
    """Real-Asterisk finding 4: the phone counts as up when it has joined its room, not when it is dialled."""
    h = Harness(agents=1, phones_answer=False)
    for _ in range(5):
        h.tick(1.0)
    assert not of(h.commands, C.ClaimLeads) and not h.pbx and not h.core.agents[100].phone_up
    logins = of(h.commands, C.LoginPhone)
    assert len(logins) == 1  # dialled again only after login_retry_s, not every sync
    h.tick(h.core.config.login_retry_s)
    assert len(of(h.commands, C.LoginPhone)) == 2 and not of(h.commands, C.ClaimLeads)
    out = h.feed(AgentJoined("100", h.now))
    assert h.core.agents[100].phone_up and not of(out, C.Originate)
    h.tick()
    assert len(h.live("dialing")) == 1  # dialled only after the join
    h.feed(AgentLeft("100", h.now, 16))
    h.failed(h.live("dialing")[0], "no_answer")
    h.tick(1.0)
    assert not h.live("dialing")  # its phone is gone: nothing paced on it


def test_a_call_answered_on_another_server_than_the_agent_waits_then_hears_the_safe_harbour() -> None:
    """Real-Asterisk finding 7: never Redirected into an empty room on the other server."""
    h = Harness(agents=1, leads=1, agent_server={100: "A"})
    h.start()
    [call] = h.live("dialing")
    out = h.answer(call, server="B")
    assert not of(out, C.Connect) and not of(out, C.ChangeAgentState)
    assert h.core.calls[call].state == CallState.WAITING
    h.tick(h.core.config.abandon_after_s)
    assert [p for p, _ in h.played[call]] == [SAFE_HARBOUR_PROMPT] and h.rows[100].state == "ready"


def test_a_call_goes_to_the_agent_on_its_own_server() -> None:
    h = Harness(agents=2, leads=2, agent_server={100: "A", 101: "B"}, auto_wrap_up_s=1.0)
    h.start()
    first, second = h.live("dialing")
    out = h.answer(first, server="B")  # 100 (on A) is the longest idle, but the call is on B
    assert of(out, C.Connect) == [C.Connect(first, 101)]
    out = h.answer(second, server="B")
    assert not of(out, C.Connect) and h.core.calls[second].state == CallState.WAITING  # 101 is busy, 100 on A
    h.connected(first)
    h.ended(first, talk_s=5.0)
    h.tick(h.core.config.auto_wrap_up_s or 0.0)  # 101 back from wrap-up takes the waiting call on B
    assert h.core.calls[second].agent_id == 101


def test_a_leg_left_up_for_an_agent_nobody_logged_in_is_hung_up() -> None:
    h = Harness(agents=1)
    h.feed(AgentJoined("100", h.now, server="A"))  # recovered: in its room before any sync
    h.feed(AgentJoined("777", h.now, server="A"))  # an agent with no session: a leftover
    out = h.feed(C.Synced((C.CampaignFacts(1, "running", "progressive"),),
                          (C.AgentFacts(100, 500, 1, "PJSIP/100", "ready", BASE),), logged_in=frozenset({100})))
    assert of(out, C.LogoutPhone) == [C.LogoutPhone(777)]
    assert not of(out, C.LoginPhone) and h.core.agents[100].phone_up  # its leg is up already: no second login


def test_an_adopted_call_stays_with_its_agent_and_ends_human_with_its_talk_time() -> None:
    """Real-Asterisk finding 12: after an engine restart the call still up is re-attached, never re-dialled."""
    h = Harness(agents=1, leads=1)
    h.rows[100].state = "talking"
    h.lead_status[1] = "in_progress"
    h.attempts[1] = Attempt(1, 1, answered=True, connected=True)
    new = C.NewCall("cc-000000000001", 1, 1, 1, None, "+8613900000001", 1)
    adopted = C.AdoptedCall(new, "A", BASE - timedelta(seconds=20), BASE - timedelta(seconds=18), room_agent=100)
    h.pbx["cc-000000000001"] = "connected"
    synced = h.synced()
    out = h.feed(C.Synced(synced.campaigns, synced.agents, adopted=(adopted,), hangups=("cc-000000000099",)))
    assert of(out, C.Hangup) == [C.Hangup("cc-000000000099")]  # up with our id, attempt over: hung up
    call = h.core.calls["cc-000000000001"]
    assert call.state == CallState.CONNECTED and h.core.agents[100].call_id == call.call_id
    h.feed(AgentJoined("100", h.now, server="A"))
    h.tick(1.0)
    assert not of(h.commands, C.Originate)  # nothing re-dialled, and the agent is not given another call
    h.now = 12.0
    out = h.ended("cc-000000000001")
    [finish] = [r for c in of(out, C.ChangeAgentState) for r in c.records if isinstance(r, C.FinishAttempt)]
    assert finish.outcome == C.Outcome.HUMAN and finish.talk_s == pytest.approx(30.0)
    assert h.rows[100].state == "wrap_up" and h.attempts[1].outcome == "human"


def test_an_unknown_input_is_refused() -> None:
    with pytest.raises(TypeError):
        CallCore().handle("answered", 0.0, BASE)  # type: ignore[arg-type]


def test_a_hand_off_is_an_inbound_call_routed_connected_and_ended_like_an_outbound_one() -> None:
    h = Harness(agents=2, leads=0)
    h.start()
    call = h.hand_off(client_id=42)
    out = h.tick(1.0)  # the sync loads it: queued, the PBX asked to hold it; not routed before it is parked
    assert of(out, C.ExpectInbound) == [C.ExpectInbound(call)] and not of(out, C.Connect)
    assert h.core.inbound[call].state == C.InboundState.WAITING
    out = h.park(call)
    [reserve] = of(out, C.ChangeAgentState)  # 100: idle since BASE, the longest (the outbound rule)
    assert (reserve.staff_id, reserve.event, reserve.reason) == (100, "reserve", "ivr_handoff")
    assert of(out, C.Connect) == [C.Connect(call, 100)]
    out = h.connected(call)
    [connect] = of(out, C.ChangeAgentState)
    assert connect.event == "connect" and connect.contact == C.OpenInboundContact(42, 700)
    assert connect.records == (C.HandoffStep(700, "agent_connected", 100),)
    assert ContactOpened(100, 8700, 42, ivr_session_id=700) in [c.event for c in of(out, C.Publish)]
    assert h.rows[100].state == "talking" and h.handoffs[700].connected_to == 100
    h.now += 30.0
    out = h.ended(call)  # the caller hangs up: the agent goes to wrap-up, the IVR session ends
    [hangup] = of(out, C.ChangeAgentState)
    assert hangup.event == "hangup" and hangup.records == (C.EndHandoff(700, "completed", 30.0),)
    assert h.rows[100].state == "wrap_up" and h.handoffs[700].ended == "completed"
    assert not h.core.inbound and h.core.agents[100].call_id == call  # kept for the wrap-up
    h.tick(5.0)  # auto wrap-up: back to ready
    assert h.rows[100].state == "ready"


def test_answered_outbound_calls_are_served_before_waiting_hand_offs_and_oldest_hand_off_first() -> None:
    h = Harness(agents=1, leads=1)
    h.start()
    [outbound] = h.live("dialing")
    h.rows[100].state = "paused"
    h.web_moved = True
    older = h.hand_off()
    h.now += 1.0
    newer = h.hand_off()
    h.tick(1.0)
    h.park(newer)
    h.park(older)
    h.answer(outbound)
    h.rows[100].state = "ready"
    h.web_moved = True
    out = h.tick(1.0)  # the agent is back: the answered customer first (the 2 s abandon rule)
    assert of(out, C.Connect) == [C.Connect(outbound, 100)]
    h.connected(outbound)
    h.ended(outbound)
    out = h.tick(5.0)  # wrap-up over: the older hand-off next
    assert of(out, C.Connect) == [C.Connect(older, 100)]


def test_a_hand_off_nobody_takes_hears_the_sorry_prompt_and_gets_a_call_back() -> None:
    h = Harness(agents=1, leads=0)
    h.start()
    h.rows[100].state = "paused"
    h.web_moved = True
    parked, unseen = h.hand_off(), h.hand_off()
    h.tick(1.0)
    h.park(parked)
    assert not of(h.tick(h.core.config.handoff_wait_s - 2.0), C.Play)
    out = h.tick(2.0)
    assert of(out, C.Play) == [C.Play(parked, "cc/zh-CN/handoff_sorry", or_hangup=True)]
    assert h.handoffs[700].callbacks == h.handoffs[701].callbacks == 1
    assert h.handoffs[701].ended == "handoff_timeout"  # never parked: nobody is there to hear it
    h.ended(parked)
    assert h.handoffs[700].ended == "handoff_timeout" and not h.core.inbound


def test_a_caller_who_hangs_up_while_waiting_or_before_the_sync_frees_nobody_and_is_ended() -> None:
    h = Harness(agents=1, leads=0)
    h.start()
    h.rows[100].state = "paused"
    h.web_moved = True
    waiting = h.hand_off()
    h.tick(1.0)
    h.park(waiting)
    h.ended(waiting)
    assert h.handoffs[700].ended == "caller_hangup" and h.rows[100].state == "paused"
    early = h.hand_off()  # the PBX reports it and its end before the database lists it
    h.park(early)
    h.ended(early)
    h.tick(1.0)
    assert h.handoffs[701].ended == "caller_hangup" and early not in h.core.inbound and early not in h.pbx


def test_a_failed_connect_of_a_hand_off_waits_for_the_channel_again_and_keeps_the_phone_up() -> None:
    h = Harness(agents=1, leads=0)
    h.start()
    call = h.hand_off()
    h.tick(1.0)
    h.fail_connect = True
    out = h.park(call)
    assert [(c.event) for c in of(out, C.ChangeAgentState)] == ["reserve", "release"]
    assert h.core.agents[100].phone_up and not h.core.inbound[call].parked and h.rows[100].state == "ready"
    h.fail_connect = False
    out = h.feed(Answered(call, h.now))  # the dialplan's repeated report
    assert of(out, C.Connect) == [C.Connect(call, 100)]


# --- properties over generated event sequences -----------------------------------------------------------------


class DiallerMachine(RuleBasedStateMachine):
    """Random interleavings of the PBX (answers, AMD, connects, far-end hang-ups, failures, refusals), the web
    (pause, ready, logout) and time, against the core with the fakes."""

    @initialize(agents=st.integers(1, 4), mode=st.sampled_from(["progressive", "ratio"]),
                wrap=st.sampled_from([None, 3.0]), two_servers=st.booleans())
    def setup(self, agents: int, mode: str, wrap: float | None, two_servers: bool) -> None:
        rooms = {100 + i: "AB"[i % 2] for i in range(agents)} if two_servers else {}
        self.h = Harness(agents=agents, leads=12, mode=mode, auto_wrap_up_s=wrap, agent_server=rooms)
        self.servers = ["A", "B"] if two_servers else [""]
        self.h.start()

    def pick(self, state: str, i: int) -> str | None:
        live = self.h.live(state)
        return live[i % len(live)] if live else None

    @rule(dt=st.floats(0.05, 6.0))
    def time_passes(self, dt: float) -> None:
        h = self.h
        h.now = max(h.now, min(h.now + dt, h.core.next_deadline()))  # the driver never sleeps past a deadline
        h.feed(C.Tick())
        for call in h.core.calls.values():  # nobody waits past the abandon deadline
            if call.state == CallState.WAITING:
                assert call.answered is not None and h.now < call.answered + h.core.config.abandon_after_s
        for call_id in h.live("closing"):  # the PBX carries out the prompt / hang-up
            h.ended(call_id)

    @rule(i=st.integers(0, 50), amd=st.sampled_from(["human", "human", "machine", "notsure", None]),
          s=st.integers(0, 1))
    def answer(self, i: int, amd: Any, s: int) -> None:
        call_id = self.pick("dialing", i)
        if call_id is not None:  # on either server (the harness checks every Connect stays on its server)
            self.h.answer(call_id, amd, server=self.servers[s % len(self.servers)])

    @rule(staff=st.integers(0, 3))
    def agent_phone_drops(self, staff: int) -> None:
        agent = self.h.core.agents.get(100 + staff)
        if agent is not None and agent.phone_up and agent.state not in (AgentState.RESERVED, AgentState.TALKING):
            self.h.feed(AgentLeft(str(agent.staff_id), self.h.now, 16))  # dialled again at a later sync

    @invariant()
    def only_phones_in_their_rooms_take_calls(self) -> None:
        for call in self.h.core.calls.values():
            if call.state in (CallState.RESERVING, CallState.CONNECTING) and call.agent_id is not None:
                agent = self.h.core.agents[call.agent_id]
                assert agent.phone_up and (not call.server or agent.server == call.server)

    @rule(i=st.integers(0, 50))
    def reaches_agent(self, i: int) -> None:
        call_id = self.pick("connecting", i)
        if call_id is not None:
            self.h.connected(call_id)

    @rule(i=st.integers(0, 50), state=st.sampled_from(["answered", "connected", "connecting"]))
    def far_end_hangs_up(self, i: int, state: str) -> None:
        call_id = self.pick(state, i)
        if call_id is not None:
            self.h.ended(call_id, talk_s=None)

    @rule(i=st.integers(0, 50), reason=st.sampled_from(["busy", "no_answer", "congestion", "lost"]))
    def fails(self, i: int, reason: Any) -> None:
        call_id = self.pick("dialing", i)
        if call_id is not None:
            self.h.failed(call_id, reason)

    @rule(staff=st.integers(0, 3), event=st.sampled_from(["pause", "ready", "logout"]))
    def web_moves_agent(self, staff: int, event: str) -> None:
        row = self.h.rows.get(100 + staff)
        if row is None or row.ended or row.state in ("reserved", "talking"):
            return  # the desk does not move an agent on a call
        if self.h.move(row, event):
            row.ended = row.state == "logged_out"
            self.h.web_moved = True

    @rule(client=st.sampled_from([None, 42]))
    def caller_hands_off(self, client: int | None) -> None:
        self.h.hand_off(client)

    @rule(i=st.integers(0, 50))
    def pbx_reports_the_waiting_caller(self, i: int) -> None:
        call_id = self.pick("expected", i)
        if call_id is not None:
            self.h.park(call_id)

    @rule(refuse=st.booleans(), fail=st.booleans())
    def pbx_mood(self, refuse: bool, fail: bool) -> None:
        self.h.refuse_originate, self.h.fail_connect = refuse, fail

    @invariant()
    def no_agent_holds_two_calls(self) -> None:
        holders = [c.agent_id for c in self.h.core.calls.values() if c.agent_id is not None]
        holders += [c.agent_id for c in self.h.core.inbound.values() if c.agent_id is not None]  # hand-offs too
        assert len(holders) == len(set(holders))
        held = [a.call_id for a in self.h.core.agents.values() if a.call_id is not None]
        assert len(held) == len(set(held))

    @invariant()
    def no_lead_has_two_attempts_in_flight(self) -> None:
        leads = [c.lead_id for c in self.h.core.calls.values()]
        assert len(leads) == len(set(leads))
        open_attempts = [a.lead_id for a in self.h.attempts.values() if a.outcome is None]
        assert len(open_attempts) == len(set(open_attempts))
        assert sorted(open_attempts) == sorted(leads)  # every attempt the core let go of is finished

    @invariant()
    def the_core_agrees_with_the_database(self) -> None:
        if self.h.web_moved:
            return  # it learns the web's changes at the next sync
        for agent in self.h.core.agents.values():
            row = self.h.rows[agent.staff_id]
            assert agent.pending == 0 and agent.state == row.state
            if agent.state in (AgentState.RESERVED, AgentState.TALKING):
                # never held for a call that is gone (outbound or inbound)
                assert agent.call_id in self.h.core.calls or agent.call_id in self.h.core.inbound

    def teardown(self) -> None:
        h = getattr(self, "h", None)
        if h is None:
            return
        h.fail_connect = False
        for _ in range(20):  # settle: the far end hangs up everything that is left
            for call_id in h.live("dialing"):
                h.failed(call_id, "no_answer")
            for call_id in (h.live("answered") + h.live("connecting") + h.live("connected") + h.live("closing")
                            + h.live("expected")):
                h.ended(call_id)
            h.now += 10.0
            h.refuse_originate = True
            h.feed(C.Tick())
        assert not h.core.calls and not h.pbx and not h.core.inbound
        for row in h.handoffs.values():  # every hand-off ended once; an agent reached means it ended completed
            assert row.ended is not None
            assert (row.ended == "completed") == (row.connected_to is not None)
        assert len(h.contacts) == len({ivr for _, ivr in h.contacts})  # one desk contact per hand-off at most
        for attempt in h.attempts.values():
            call_id = f"cc-{attempt.id:012d}"
            if not attempt.answered or attempt.outcome == "machine":
                continue
            prompts = [p for p, _ in h.played.get(call_id, [])]
            # every answered call ended connected, abandoned with the safe-harbour prompt, or failed (the person
            # hung up before anyone could reach them, within the abandon window)
            if attempt.connected:
                assert attempt.outcome == "human"
            elif attempt.outcome == "abandoned":
                assert prompts == [SAFE_HARBOUR_PROMPT]
                [(_, at)] = h.played[call_id]
                assert at >= h.answered_at[call_id] + h.core.config.abandon_after_s  # never before the deadline
            else:
                assert attempt.outcome == "human" and attempt.lead_outcome == "abandoned" and not prompts


TestDiallerMachine = DiallerMachine.TestCase
TestDiallerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
