"""An in-process simulated PBX implementing the telephony port (the default backend).

Customers behave as a ``CustomerModel`` (reused from ``callcenter.domain.shift_simulation``): each
attempt ends human / machine / busy / no answer / failed with the model's probabilities and
times; a connected human talks for a lognormal time, then hangs up.  Time comes from an
injectable ``Clock``: ``LoopClock`` (asyncio loop time, real seconds) or ``VirtualClock``
(tests and accelerated runs advance it by hand; callbacks fire in time order, synchronously).

Inbound calls (IVR hand-offs): ``expect_inbound(call_id)`` puts the caller of a hand-off on hold here (they
wait as long as it takes, reported at once as ``Answered``: parked); ``connect`` moves them to an agent like an
answered outbound call (``Connected``, then a sampled talk time and ``Ended``); ``caller_hangs_up`` is the
caller giving up (tests).

Events are queued on ``stream`` (read them with ``events()``, or ``stream.pending()`` after
advancing a virtual clock).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from callcenter.domain import hearing as H
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.ports import channel_variables as V
from callcenter.ports.calendar import Monotonic
from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    MONITOR_MODES,
    AmdVerdict,
    MonitorMode,
    Answered,
    Connected,
    DigitPressed,
    Ended,
    EventStream,
    Failed,
    OriginateRejected,
    Ringing,
    ServerUp,
    TelephonyError,
    TelephonyEvent,
    UnknownCall,
    check_dial_string,
    check_dtmf,
    check_menu,
    check_id,
    check_prompt,
    check_originate,
)

__all__ = ["Clock", "CustomerModel", "LoopClock", "SimulatedPbx", "VirtualClock"]


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Monotonic, Protocol):
    """The simulated PBX's clock: monotonic seconds, and callbacks at a time."""

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle: ...


class LoopClock:
    """Real time: the running asyncio loop's clock."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        return asyncio.get_running_loop().call_at(when, callback)


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Simulated time that moves only when told to (``advance``/``run_until``)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[_Timer] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(max(when, self._now), next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    def next_time(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].when if self._heap else None

    def run_until(self, when: float) -> None:
        while True:
            nxt = self.next_time()
            if nxt is None or nxt > when:
                break
            timer = heapq.heappop(self._heap)
            self._now = timer.when
            timer.callback()
        self._now = max(self._now, when)

    def advance(self, seconds: float) -> None:
        self.run_until(self._now + seconds)


@dataclass
class _SimRecording:
    """A recording the engine started on a simulated call: times on the PBX clock."""

    call_id: str
    name: str
    started: float
    muted_since: float | None = None
    muted: list[tuple[float, float]] = field(default_factory=list)
    keys: list[tuple[float, str]] = field(default_factory=list)
    stopped: float | None = None


def _stop(rec: _SimRecording, now: float) -> None:
    rec.stopped = now
    if rec.muted_since is not None:
        rec.muted.append((rec.muted_since, now - rec.started))
        rec.muted_since = None


@dataclass
class _SimCall:
    call_id: str
    kind: str
    state: str = "dialing"  # dialing -> answered -> connected -> (removed)
    answered_at: float | None = None
    connected_at: float | None = None
    timers: list[Handle] = field(default_factory=list)
    amd: bool = True  # the campaign runs AMD (channel variable CC_AMD) and the PBX does
    room: str | None = None  # the agent whose room it is in (connected)
    held: bool = False  # out of the room, hearing music on hold
    dtmf: str = ""  # keys the agent sent to the customer
    prompts: list[str] = field(default_factory=list)  # the prompts played to it (play, play_menu), in order


class SimulatedPbx:
    """``Telephony`` without a PBX. ``outcomes`` may force the kind per number (tests):
    ``{"13800000001": "human", ...}`` with kinds human, machine, busy, no_answer, failed."""

    server = "simulated"

    def __init__(
        self,
        model: CustomerModel | None = None,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        amd: bool = True,
        outcomes: Mapping[str, str] | None = None,
        human_patience_s: float = 30.0,
        machine_message_s: float = 25.0,
        prompt_s: float = 6.0,
    ) -> None:
        self.model = model or CustomerModel()
        self.clock: Clock = clock or LoopClock()
        self.rng = random.Random(seed)
        self.amd = amd
        self.menu_wait_s = 6.0  # how long a menu waits for a key after its message
        self.outcomes = dict(outcomes or {})
        self.human_patience_s = human_patience_s
        self.machine_message_s = machine_message_s
        self.prompt_s = prompt_s
        self.stream = EventStream()
        self.calls: dict[str, _SimCall] = {}
        self.agents: set[str] = set()
        self.originated = 0
        self._started = False
        self.muted: set[str] = set()  # agents muted in their rooms
        self.links: set[tuple[str, str]] = set()  # agent rooms linked (consultation, conference)
        self.monitors: dict[str, tuple[str, str]] = {}  # supervisor -> (agent, listen / whisper / barge)
        self.ivr_returns: list[tuple[str, str]] = []  # (call id, menu) sent back to the IVR
        self.recordings: dict[str, _SimRecording] = {}  # name -> a recording running, or stopped and not yet fetched
        self.record_lang = "zh-CN"

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        self.stream.publish(ServerUp(self.server, self.clock.time()))

    async def aclose(self) -> None:
        for call in self.calls.values():
            for timer in call.timers:
                timer.cancel()
        self.calls.clear()
        self.stream.close()

    def events(self) -> AsyncIterator[TelephonyEvent]:
        return self.stream.__aiter__()

    def in_flight(self) -> int:
        return len(self.calls)

    # --- commands ---------------------------------------------------------------------------------

    async def originate(
        self, call_id: str, number: str, caller_id: str, variables: Mapping[str, str], timeout_s: float
    ) -> None:
        check_originate(call_id, number, caller_id, variables)
        if not self._started:
            raise OriginateRejected(call_id, "simulated PBX not started")
        if call_id in self.calls:
            raise ValueError(f"call {call_id} is already in flight")
        kind, after = self.model.sample_attempt(self.rng)
        kind = self.outcomes.get(number, kind)
        if number in self.outcomes:
            after = self._default_time(kind)
        call = _SimCall(call_id, kind, amd=self.amd and variables.get(V.CC_AMD, "1") == "1")
        self.calls[call_id] = call
        self.originated += 1
        now = self.clock.time()
        if kind in ("human", "no_answer"):
            call.timers.append(self.clock.call_at(now + min(0.5, after), lambda: self._emit(Ringing(call_id, self.clock.time()))))
        if kind == "human" and after > timeout_s:
            kind, after = "no_answer", timeout_s
        if kind == "no_answer":
            after = min(after, timeout_s)
        call.kind = kind
        call.timers.append(self.clock.call_at(now + after, lambda: self._outcome(call_id)))

    def _default_time(self, kind: str) -> float:
        m = self.model
        return {
            "human": (m.human_answer_min_s + m.human_answer_max_s) / 2,
            "machine": m.machine_s,
            "busy": m.busy_s,
            "no_answer": m.no_answer_s,
            "failed": m.failed_s,
        }[kind]

    def _outcome(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != "dialing":
            return
        now = self.clock.time()
        if call.kind == "busy":
            self._finish(call, Failed(call_id, now, "busy", 17))
        elif call.kind == "no_answer":
            self._finish(call, Failed(call_id, now, "no_answer", 19))
        elif call.kind == "failed":
            self._finish(call, Failed(call_id, now, "congestion", 34))
        else:
            call.state = "answered"
            call.answered_at = now
            amd: AmdVerdict | None
            if call.kind == "machine":
                amd = "machine" if call.amd else None
                leave = self.machine_message_s
            else:
                amd = "human" if call.amd else None
                leave = self.human_patience_s  # a person waiting in silence hangs up
            self._emit(Answered(call_id, now, amd, "SIMULATED" if call.amd else None))
            call.timers.append(self.clock.call_at(now + leave, lambda: self._hung_up_by_customer(call_id)))

    def _hung_up_by_customer(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            self._end(call, 16, "Normal Clearing")

    def _end(self, call: _SimCall, cause: int, text: str) -> None:
        now = self.clock.time()
        talk = now - call.connected_at if call.connected_at is not None else None
        self._finish(call, Ended(call.call_id, now, cause, text, talk))

    def _finish(self, call: _SimCall, event: TelephonyEvent) -> None:
        for timer in call.timers:
            timer.cancel()
        rec = self._recording_of(call.call_id)
        if rec is not None:  # the recording ends with the call, as MixMonitor's does
            _stop(rec, self.clock.time())
        self.calls.pop(call.call_id, None)
        self._emit(event)

    def _emit(self, event: TelephonyEvent) -> None:
        self.stream.publish(event)

    def _live(self, call_id: str) -> _SimCall:
        call = self.calls.get(check_id(call_id))
        if call is None:
            raise UnknownCall(f"unknown call {call_id}")
        return call

    async def connect(self, call_id: str, agent_id: str) -> None:
        check_id(agent_id, "agent id")
        call = self._live(call_id)
        if call.state == "dialing":
            raise TelephonyError(f"call {call_id} is not answered yet")
        if agent_id not in self.agents:
            raise TelephonyError(f"agent {agent_id} is not logged in")
        now = self.clock.time()
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        call.state = "connected"
        if call.connected_at is None:  # a transfer's connect: the talk time still counts from the first agent
            call.connected_at = now
        call.room, call.held = agent_id, False
        self._emit(Connected(call_id, now, agent_id))
        talk = self.model.sample_talk(self.rng)
        call.timers.append(self.clock.call_at(now + talk, lambda: self._hung_up_by_customer(call_id)))

    async def expect_inbound(self, call_id: str) -> None:
        """A hand-off's caller waits here (the simulated IVR handed them over): reported as parked."""
        if check_id(call_id) in self.calls:
            return
        now = self.clock.time()
        self.calls[call_id] = _SimCall(call_id, "inbound", state="answered", answered_at=now)
        self._emit(Answered(call_id, now))

    def caller_hangs_up(self, call_id: str) -> None:
        """The far end (a waiting or connected caller, or a customer) hangs up now."""
        self._hung_up_by_customer(call_id)

    async def hangup(self, call_id: str) -> None:
        call = self.calls.get(check_id(call_id))
        if call is None:
            return
        if call.state == "dialing":
            self._finish(call, Failed(call_id, self.clock.time(), "no_answer", 16))
        else:
            self._end(call, 16, "Normal Clearing")

    async def play(self, call_id: str, prompt: str) -> None:
        check_prompt(prompt)
        call = self._live(call_id)
        if call.state == "dialing":
            raise TelephonyError(f"call {call_id} is not answered yet")
        call.prompts.append(prompt)
        for timer in call.timers:
            timer.cancel()
        call.timers = [self.clock.call_at(self.clock.time() + self.prompt_s, lambda: self._end(call, 16, "Normal Clearing"))]

    async def play_menu(self, call_id: str, prompt: str) -> None:
        """Play a notification's message; keys come from ``press`` (``DigitPressed``); silence after it ends the
        call (as Twilio's ``<Gather>`` timing out)."""
        check_prompt(prompt)
        call = self._live(call_id)
        if call.state == "dialing":
            raise TelephonyError(f"call {call_id} is not answered yet")
        call.prompts.append(prompt)
        for timer in call.timers:
            timer.cancel()
        call.timers = [self.clock.call_at(self.clock.time() + self.prompt_s + self.menu_wait_s,
                                          lambda: self._end(call, 16, "Normal Clearing"))]

    def press(self, call_id: str, digit: str) -> None:
        """The called party presses a key now."""
        if call_id in self.calls:
            self._emit(DigitPressed(call_id, self.clock.time(), digit))

    async def reassign(self, call_id: str, new_call_id: str) -> None:
        """The call goes on under ``new_call_id`` (handed to the call core as a hand-off): parked there."""
        call = self._live(call_id)
        check_id(new_call_id)
        for timer in call.timers:
            timer.cancel()
        call.timers = []
        del self.calls[call_id]
        call.call_id = new_call_id
        self.calls[new_call_id] = call
        self._emit(Answered(new_call_id, self.clock.time()))

    # --- recording (ports.recordings.RecordsCalls): a real WAV of every recorded leg --------------------------

    def _recording_of(self, call_id: str) -> _SimRecording | None:
        """The recording running on ``call_id`` (a transferred call has had others before)."""
        return next((r for r in self.recordings.values() if r.call_id == call_id and r.stopped is None), None)

    async def record_start(self, call_id: str, name: str) -> None:
        call = self._live(call_id)
        if call.state != "connected":
            raise TelephonyError(f"call {call_id} is not with an agent")
        if self._recording_of(call_id) is not None:
            raise TelephonyError(f"call {call_id} is being recorded already")
        self.recordings[name] = _SimRecording(call_id, name, self.clock.time())

    async def record_mute(self, call_id: str, muted: bool) -> None:
        rec = self._recording_of(check_id(call_id))
        if rec is None:
            raise TelephonyError(f"call {call_id} is not being recorded")
        now = self.clock.time() - rec.started
        if muted and rec.muted_since is None:
            rec.muted_since = now
        elif not muted and rec.muted_since is not None:
            rec.muted.append((rec.muted_since, now))
            rec.muted_since = None

    async def record_stop(self, call_id: str) -> None:
        rec = self._recording_of(check_id(call_id))
        if rec is not None:
            _stop(rec, self.clock.time())

    async def record_audio(self, call_id: str, name: str) -> bytes | None:
        """The leg's WAV: the conversation synthesised, the keys the client typed as tones, silence where muted."""
        rec = self.recordings.get(name)
        if rec is None or rec.call_id != call_id or rec.stopped is None:
            return None
        del self.recordings[name]
        from callcenter.adapters.recordings_simulated import synthesise_leg

        return await asyncio.to_thread(synthesise_leg, rec.stopped - rec.started, muted=rec.muted, keys=rec.keys,
                                       lang=self.record_lang)

    def client_keys(self, call_id: str, digits: str) -> None:
        """The client types ``digits`` on their keypad now (tests): key tones on the line, in any recording."""
        self._live(call_id)
        rec = self._recording_of(call_id)
        if rec is not None:
            rec.keys.append((self.clock.time() - rec.started, digits))

    async def agent_login(self, agent_id: str, phone: str) -> None:
        check_id(agent_id, "agent id")
        check_dial_string(phone)
        # a phone already in its room (a restarted engine logging its agents in again) is reported joined again,
        # as the AMI adapter does for a leg it recovered, rather than dialled a second time
        self.agents.add(agent_id)
        self._emit(AgentJoined(agent_id, self.clock.time()))

    async def agent_logout(self, agent_id: str) -> None:
        if agent_id in self.agents:
            self.agents.discard(agent_id)
            self._emit(AgentLeft(agent_id, self.clock.time(), 16))

    # --- live-call controls (the port's CallControls) and who hears whom --------------------------------------

    def _connected_call(self, call_id: str) -> _SimCall:
        call = self._live(call_id)
        if call.state != "connected":
            raise TelephonyError(f"call {call_id} is not with an agent")
        return call

    async def hold(self, call_id: str) -> None:
        self._connected_call(call_id).held = True

    async def unhold(self, call_id: str, agent_id: str) -> None:
        call = self._connected_call(call_id)
        if check_id(agent_id, "agent id") not in self.agents:
            raise TelephonyError(f"agent {agent_id} is not logged in")
        call.held, call.room = False, agent_id

    async def mute_agent(self, agent_id: str, muted: bool) -> None:
        if check_id(agent_id, "agent id") not in self.agents:
            raise TelephonyError(f"agent {agent_id} is not logged in")
        (self.muted.add if muted else self.muted.discard)(agent_id)

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        self._connected_call(call_id).dtmf += check_dtmf(digits)

    async def link_rooms(self, agent_id: str, other_agent_id: str) -> None:
        for a in (agent_id, other_agent_id):
            if check_id(a, "agent id") not in self.agents:
                raise TelephonyError(f"agent {a} is not logged in")
        self.links.add((agent_id, other_agent_id))

    async def unlink_rooms(self, agent_id: str, other_agent_id: str) -> None:
        self.links.discard((agent_id, other_agent_id))
        self.links.discard((other_agent_id, agent_id))

    async def to_ivr(self, call_id: str, menu: str) -> None:
        """The caller goes back to the hotline IVR at ``menu`` (recorded in ``ivr_returns``): the call ends for
        the engine now, as the AMI adapter reports it."""
        call = self._connected_call(call_id)
        check_menu(menu)
        self.ivr_returns.append((call_id, menu))
        self._end(call, 16, "to_ivr")

    async def monitor(self, supervisor_id: str, phone: str, agent_id: str, mode: MonitorMode) -> None:
        check_id(supervisor_id, "supervisor id")
        check_dial_string(phone)
        if check_id(agent_id, "agent id") not in self.agents:
            raise TelephonyError(f"agent {agent_id} is not logged in")
        if mode not in MONITOR_MODES:
            raise ValueError(f"unknown monitor mode {mode!r}")
        self.monitors[supervisor_id] = (agent_id, mode)

    async def stop_monitor(self, supervisor_id: str) -> None:
        self.monitors.pop(supervisor_id, None)

    def hearing(self) -> dict[str, frozenset[str]]:
        """Who hears whom now, over every room (``callcenter.domain.hearing``): parties ``customer:<call id>``,
        ``agent:<id>``, ``supervisor:<id>``, ``moh``."""
        rooms: dict[str, list[str]] = {H.agent(a): [] for a in self.agents}
        held = []
        for call in self.calls.values():
            if call.state != "connected" or call.room is None:
                continue
            if call.held:
                held.append(H.customer(call.call_id))
            else:
                rooms.setdefault(H.agent(call.room), []).append(H.customer(call.call_id))
        return H.hearing(rooms, links=[(H.agent(a), H.agent(b)) for a, b in self.links],
                         muted=[H.agent(a) for a in self.muted], held=held,
                         monitors={H.supervisor(s): (H.agent(a), m) for s, (a, m) in self.monitors.items()})

    def hears(self, listener: str, speaker: str) -> bool:
        """Whether ``listener`` hears ``speaker`` now (party names of ``callcenter.domain.hearing``)."""
        return speaker in self.hearing().get(listener, frozenset())
