"""The dialler's call core: every decision of the outbound dialler, as a state machine with no I/O.

``CallCore.handle(event, now, wall)`` takes one input and returns the commands to carry out, in order.  The
core never touches the database, the PBX, the bus or a clock: time comes in with every input (``now``: clock
seconds, ``wall``: aware UTC datetime), facts from the database come in as frozen ``*Facts`` values, and every
effect goes out as a command.  ``callcenter.services.dialer.engine.DialerEngine`` is the driver: it feeds port events
and ticks in, carries the commands out through the ports, and feeds each command's result (an event below)
straight back in before the next command runs (depth first), so the core always decides on current facts.

Inputs (events)
    port events   ``Answered``, ``Connected``, ``Ended``, ``Failed``, ``AgentJoined``, ``AgentLeft``
                  (``callcenter.ports.telephony``; each says which PBX server it happened on)
    ``Tick``              time passed: sync with the database when due, else one round of the tick work
    ``Synced``            the database's campaigns, agent sessions and due callbacks (result of ``Sync``)
    ``Resumed``           a ``Resume`` barrier was reached (every command before it and what it led to is done)
    ``LeadsClaimed``      leads claimed and their attempts started (result of ``ClaimLeads``)
    ``OriginateAccepted`` / ``OriginateRefused``   (results of ``Originate``)
    ``ConnectFailed``     (result of ``Connect`` when the PBX refused it)
    ``AgentChanged``      (result of ``ChangeAgentState`` / ``SkipPreview``: applied, or the row's own state)
    ``PhoneLogin``        (result of ``LoginPhone``: the PBX took the login; the phone is up at ``AgentJoined``)
    ``PreviewsOffered``   (result of ``OfferPreviews``)    ``PreviewDialled`` (result of ``DialPreview``)
    ``CallbackResult``    (result of ``PlaceCallback``)
    ``Synced.handoffs``   the IVR hand-offs waiting in the database (inbound calls, below)

Outputs (commands)
    telephony   ``Originate``, ``Connect``, ``Play``, ``Hangup``, ``LoginPhone``, ``LogoutPhone``,
                ``ExpectInbound`` (tell the PBX a hand-off's caller is ours; the simulated PBX needs it)
    database    ``Sync``, ``ClaimLeads``, ``ChangeAgentState`` (with records in the same transaction and, on
                connect, the agent's desk contact), ``RecordAnswered``, ``RecordConnected``, ``FinishAttempt``,
                ``CompleteDisposition``, ``MissCallback``, ``OfferPreviews``, ``SkipPreview``, ``DialPreview``,
                ``PlaceCallback``; for hand-offs the records ``HandoffStep``, ``EndHandoff``,
                ``HandoffCallback`` and the contact ``OpenInboundContact``
    bus         ``Publish(event)`` (typed events of ``callcenter.domain.events``), after the commands before it
    control     ``Resume`` (a barrier: the driver answers ``Resumed``)

Call states (``CallState``) and their transitions::

    state       input                                  next          commands
    DIALING     Answered, AMD machine                  MACHINE       RecordAnswered; Play(leave-message)|Hangup
    DIALING     Answered, human, agent reserved for it CONNECTING    RecordAnswered; Connect
    DIALING     Answered, human, a ready agent         RESERVING     ChangeAgentState(reserve, +RecordAnswered)
    DIALING     Answered, human, nobody ready          WAITING       RecordAnswered
    WAITING     an agent becomes ready                 RESERVING     ChangeAgentState(reserve)
    WAITING     Tick, abandon_after_s since answer     ABANDONING    Play(safe-harbour, or hang up)
    RESERVING   AgentChanged(reserve applied)          CONNECTING    Connect
    RESERVING   AgentChanged(refused)                  WAITING       (back at the head of the queue)
    CONNECTING  ConnectFailed                          WAITING       ChangeAgentState(release); agent's phone down
    CONNECTING  ConnectFailed, the PBX knows no such   WAITING       ChangeAgentState(release); out of the queue
                call (it ended; its end is on its way)               until its Ended (the agent's phone stays up)
    CONNECTING  Connected                              CONNECTED     ChangeAgentState(connect, +RecordConnected,
                                                                     +desk contact); Publish(ContactOpened)
    any         Ended / Failed / OriginateRefused      (gone)        FinishAttempt (with the agent's hangup or
                                                                     release); pacer.record; Publish(AttemptEnded)

    Outcome of an ending: MACHINE -> machine; CONNECTED -> human (talk time); ABANDONING -> abandoned; answered
    but never connected -> human (the lead counts as abandoned); Failed -> busy | no_answer | lost | failed;
    originate refused -> failed, unconfirmed or no PBX -> lost (neither is fed to the pacer).

Agent states (``AgentState``, the database's ``agent_sessions.state``) move only by the table of
``callcenter.domain.campaigns.AGENT_TRANSITIONS``.  The core applies its own changes at once (so one round
never gives one agent two calls) and takes the row's state when the database refused one (the web moved the
agent meanwhile).  The core's agent changes::

    ready     reserve  -> reserved   an answered call is routed (longest-idle ready agent whose phone has joined
                                     its room on the call's server first),
                                     a preview lead is shown, a callback is placed (owner first when agent-only)
    reserved  connect  -> talking    the call reached the agent (the desk contact opens in the same transaction)
    reserved  release  -> ready      the call ended before it reached the agent, connect failed, preview skipped
    talking   hangup   -> wrap_up    the call ended (auto wrap-up after ``auto_wrap_up_s`` when set)
    wrap_up   ready    -> ready      auto wrap-up deadline passed

Inbound calls (IVR hand-offs) are calls of the same core, routed by the same rule (``ready_agents``: the
longest-idle ready agent whose phone is up, of any campaign), reaching the agent the same way (``Connect``: into
the agent's room) and ending the same way (the agent to wrap-up). They come from the database: an IVR session
handed off, not ended, without an ``agent_connected`` step (``services.handoff.load_waiting``), so they survive a
restart of the engine. Their call id is ``cc-h<ivr session id>`` (``telephony.variables.handoff_call_id``); the
port reports the caller's channel as ``Answered`` ("parked": the PBX holds the caller and can move them). Waiting
outbound calls (answered by a customer, with the 2 s abandon rule) are served before waiting hand-offs::

    state       input                                  next          commands
    (new)       Synced.handoffs lists it               WAITING       ExpectInbound
    WAITING     Answered (parked), a ready agent       RESERVING     ChangeAgentState(reserve)
    RESERVING   AgentChanged(reserve applied)          CONNECTING    Connect
    RESERVING   AgentChanged(refused)                  WAITING       (back at the head of the queue)
    CONNECTING  ConnectFailed                          WAITING       ChangeAgentState(release); not parked until
                                                                     the PBX reports the channel again
    CONNECTING  Connected                              CONNECTED     ChangeAgentState(connect, +HandoffStep
                                                                     agent_connected, +OpenInboundContact);
                                                                     Publish(ContactOpened)
    WAITING     Tick, ``handoff_wait_s`` since asked   SORRY         HandoffCallback; Play(sorry prompt, or hang up)
                (not parked: the caller is not there)  (gone)        HandoffCallback; EndHandoff
    WAITING     no longer in Synced.handoffs           (gone)        (ended, or another dialler has it)
    any         Ended                                  (gone)        EndHandoff (with the agent's hangup -> wrap_up
                                                                     or release)

Phones: an agent is offered calls and counted by the pacer only while its phone leg is in its room
(``AgentJoined`` .. ``AgentLeft``, each with the server of the room); ``LoginPhone`` only dials it (retried every
``login_retry_s`` while it has not joined). A call is routed only to an agent on the server it is up on; one
answered where no agent's room is waits and is abandoned with the safe-harbour prompt, never moved into an
empty room. A leg left in its room for an agent with no open session anywhere (``Synced.logged_in``) is hung up.

Restart: ``Synced.adopted`` re-attaches the calls a dead dialler left up on the PBX (``leases.take_over_dead``
adopted their attempts): CONNECTED to the agent whose room the PBX shows it in (talk time from the recorded
``connected_at``), else WAITING when answered, else DIALING; they end like any other call. ``Synced.hangups``:
calls up with our ids whose attempts are over.

A tick: ``Tick``; when a sync is due, ``Sync`` -> ``Synced`` (campaigns, agents and their phones, preview
choices) -> ``Resumed("previews")`` (a lead for each ready agent of a preview campaign) ->
``Resumed("callbacks")`` (due callbacks) -> ``Resumed("tick")``; then auto wrap-ups, abandons, waiting calls to
free agents, pacing (``pacing_state`` builds the pacer's ``DialerState``: the one place to add more to what the
pacer sees) -> ``Resumed("board")``: the wall board, when its figures changed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Literal, Union

from callcenter.domain.campaigns import RuleError, agent_transition
from callcenter.domain.events import (
    AgentStateChanged,
    AttemptEnded,
    CallbackPlaced,
    ContactOpened,
    DialerBoard,
    Event,
    PreviewOffered,
)
from callcenter.domain.abandon import AbandonBudget
from callcenter.domain.pacing import AgentView, AttemptOutcome, DialerState, Pacer, make_pacer
from callcenter.ports import channel_variables as V
from callcenter.ports.telephony import AgentJoined, AgentLeft, Answered, Connected, Ended, Failed, MonitorMode, notsure_as
from callcenter.services.dialer import controls as K
from callcenter.services.dialer.controls import CallControls, ControlFailed, ControlRequested

SAFE_HARBOUR_PROMPT = "cc/safe-harbour"
MACHINE_PROMPT = "cc/leave-message"


class CallState(StrEnum):
    DIALING = "dialing"
    WAITING = "waiting"  # answered by a person, queued for an agent
    RESERVING = "reserving"  # an agent is being reserved for it
    CONNECTING = "connecting"  # being moved into the agent's room
    CONNECTED = "connected"
    MACHINE = "machine"
    ABANDONING = "abandoning"  # hearing the safe-harbour prompt


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    PAUSED = "paused"
    READY = "ready"
    RESERVED = "reserved"
    TALKING = "talking"
    WRAP_UP = "wrap_up"


class Outcome(StrEnum):
    HUMAN = "human"
    ABANDONED = "abandoned"
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    LOST = "lost"


class CampaignState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # no longer running or paused in the database; dropped once its calls are over


_PACED = {Outcome.HUMAN: "human", Outcome.ABANDONED: "human", Outcome.MACHINE: "machine", Outcome.BUSY: "busy",
          Outcome.NO_ANSWER: "no_answer", Outcome.FAILED: "failed"}  # LOST is not the customer's doing


# --- facts from the database -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignFacts:
    id: int
    state: str
    mode: str
    caller_id: str = ""
    amd_policy: str = "human"
    leave_message: bool = False
    ratio: float = 2.0
    target_abandon: float = 0.03
    budget: AbandonBudget | None = None  # today's and 30 days' live answers and abandons, every dialler's


@dataclass(frozen=True)
class AgentFacts:
    """One open agent session leased by this dialler."""

    staff_id: int
    session_id: int
    campaign_id: int | None
    phone: str
    state: str
    since: datetime
    preview_lead_id: int | None = None
    preview_action: str | None = None


@dataclass(frozen=True)
class CallbackFacts:
    id: int
    campaign_id: int | None
    lead_id: int | None
    due_at: datetime
    agent_only: bool = False
    owner_id: int | None = None


@dataclass(frozen=True)
class HandoffFacts:
    """An IVR hand-off waiting in the database: the caller asked for an agent at ``since``."""

    ivr_session_id: int
    client_id: int | None
    since: datetime
    lang: str = "zh-CN"
    caller: str = ""

    @property
    def call_id(self) -> str:
        return V.handoff_call_id(self.ivr_session_id)


@dataclass(frozen=True)
class LeadFacts:
    lead_id: int
    client_id: int | None
    name: str
    phone: str
    attempt_no: int


@dataclass(frozen=True)
class NewCall:
    """An attempt row just started (its lead claimed by us): a call to originate."""

    call_id: str
    attempt_id: int
    campaign_id: int
    lead_id: int
    client_id: int | None
    phone: str
    attempt_no: int
    agent_id: int | None = None  # pre-assigned: preview, callback
    callback_id: int | None = None


# --- internal events (results of commands, ticks) ---------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class AdoptedCall:
    """A call a dead (or restarted) dialler placed that is still up on the PBX, now ours (``leases.take_over_dead``
    adopted its attempt): re-attached so it ends normally. ``room_agent``: the agent room the PBX shows it in."""

    call: NewCall
    server: str = ""
    answered_at: datetime | None = None
    connected_at: datetime | None = None
    room_agent: int | None = None
    amd: str | None = None


@dataclass(frozen=True)
class Synced:
    campaigns: tuple[CampaignFacts, ...]
    agents: tuple[AgentFacts, ...]
    callbacks: tuple[CallbackFacts, ...] = ()
    adopted: tuple[AdoptedCall, ...] = ()
    hangups: tuple[str, ...] = ()  # calls up on the PBX with our ids whose attempts are over: hang them up
    logged_in: frozenset[int] | None = None  # staff with an open agent session (any dialler); None: not known
    handoffs: tuple[HandoffFacts, ...] | None = None  # None: not loaded (this engine takes no hand-offs)


@dataclass(frozen=True)
class Resumed:
    phase: str


@dataclass(frozen=True)
class LeadsClaimed:
    campaign_id: int
    wanted: int
    calls: tuple[NewCall, ...]


@dataclass(frozen=True)
class OriginateAccepted:
    call_id: str


@dataclass(frozen=True)
class OriginateRefused:
    call_id: str
    outcome: Literal["failed", "lost"]
    hold: bool  # the PBX is not taking calls: claim no leads of the campaign for a while
    text: str = ""


@dataclass(frozen=True)
class ConnectFailed:
    """``gone``: the PBX no longer knows the call (it has ended; its end event is on its way), so neither the
    agent's phone nor the call is to blame: the agent is released with its phone up, the call is not offered
    to another agent and ends at its end event."""

    call_id: str
    gone: bool = False


@dataclass(frozen=True)
class AgentChanged:
    """The database's answer to an agent change: ``applied``, else the row had moved to ``state`` (None: the
    session is over). ``contact_id``: the desk contact opened with it."""

    staff_id: int
    event: str
    applied: bool
    state: str | None
    since: datetime | None
    reason: str = ""
    attempt_id: int | None = None
    contact_id: int | None = None


@dataclass(frozen=True)
class PhoneLogin:
    staff_id: int
    up: bool


@dataclass(frozen=True)
class PreviewOffer:
    staff_id: int
    lead: LeadFacts | None  # None: the agent's row had moved (``state``) or no lead was left
    state: str | None
    since: datetime | None


@dataclass(frozen=True)
class PreviewsOffered:
    campaign_id: int
    offers: tuple[PreviewOffer, ...]


@dataclass(frozen=True)
class PreviewDialled:
    staff_id: int
    call: NewCall | None  # None: the lead is gone (not ours any more)


@dataclass(frozen=True)
class CallbackResult:
    staff_id: int
    callback_id: int
    call: NewCall | None  # None: not placed (the agent's row is as it was: ``state``)
    state: str | None
    since: datetime | None


CoreEvent = Union[Answered, Connected, Ended, Failed, AgentJoined, AgentLeft, Tick, Synced, Resumed, LeadsClaimed,
                  OriginateAccepted, OriginateRefused, ConnectFailed, AgentChanged, PhoneLogin, PreviewsOffered,
                  PreviewDialled, CallbackResult,
                  ControlRequested, ControlFailed]  # call controls (services/dialer/controls.py)


# --- commands --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Originate:
    call_id: str
    number: str
    caller_id: str
    variables: Mapping[str, str]
    campaign_id: int


@dataclass(frozen=True)
class Connect:
    call_id: str
    staff_id: int


@dataclass(frozen=True)
class Play:
    call_id: str
    prompt: str
    or_hangup: bool = False  # hang up when the prompt cannot be played


@dataclass(frozen=True)
class Hangup:
    call_id: str


@dataclass(frozen=True)
class LoginPhone:
    staff_id: int
    phone: str


@dataclass(frozen=True)
class LogoutPhone:
    staff_id: int


@dataclass(frozen=True)
class Sync:
    lead_ids: tuple[int, ...]  # leads with a call in flight or a preview shown: their claims are renewed


@dataclass(frozen=True)
class ClaimLeads:
    campaign_id: int
    n: int


@dataclass(frozen=True)
class RecordAnswered:
    attempt_id: int
    amd: str | None
    amd_cause: str


@dataclass(frozen=True)
class RecordConnected:
    attempt_id: int
    staff_id: int | None


@dataclass(frozen=True)
class FinishAttempt:
    attempt_id: int
    outcome: Outcome
    cause: int | None = None
    cause_text: str = ""
    talk_s: float | None = None
    lead_outcome: str | None = None
    abandoned: bool = False
    callback_id: int | None = None
    callback_status: str = "missed"


@dataclass(frozen=True)
class CompleteDisposition:
    """The auto wrap-up: the attempt of ``call_id`` gets ``completed`` when the agent set none."""

    call_id: str


@dataclass(frozen=True)
class MissCallback:
    callback_id: int


@dataclass(frozen=True)
class HandoffStep:
    """An IVR step of a hand-off (``agent_connected``: the caller reached ``staff_id``)."""

    ivr_session_id: int
    step: str
    staff_id: int | None = None


@dataclass(frozen=True)
class EndHandoff:
    """The hand-off's call is over: its IVR session ends with ``reason`` (unless already ended)."""

    ivr_session_id: int
    reason: str
    talk_s: float | None = None


@dataclass(frozen=True)
class HandoffCallback:
    """Nobody took the hand-off within ``handoff_wait_s``: a call back to the client is booked (a pending
    ``Callback`` row due at once, for anyone; ``services.handoff.book_callback``) and the step recorded."""

    ivr_session_id: int
    client_id: int | None
    caller: str


Record = Union[RecordAnswered, RecordConnected, FinishAttempt, CompleteDisposition, MissCallback, HandoffStep,
               EndHandoff, HandoffCallback]


@dataclass(frozen=True)
class OpenContact:
    """The agent's desk contact for the connected call (``services.desk.open_contact``)."""

    client_id: int | None
    attempt_id: int
    lead_id: int
    campaign_id: int
    attempt_no: int


@dataclass(frozen=True)
class OpenInboundContact:
    """The agent's desk contact for a connected IVR hand-off."""

    client_id: int | None
    ivr_session_id: int


@dataclass(frozen=True)
class ExpectInbound:
    """A hand-off's caller waits on the PBX under ``call_id`` (a backend that cannot see it by itself, such as
    the simulated PBX, starts reporting it; Asterisk reports it from the dialplan's UserEvent)."""

    call_id: str


@dataclass(frozen=True)
class ChangeAgentState:
    """In one transaction: the ``records`` (always), the agent ``event`` when the row is still ``expected``,
    then the desk ``contact`` when given. Answered by ``AgentChanged``."""

    staff_id: int
    session_id: int
    event: str
    expected: AgentState
    reason: str = ""
    attempt_id: int | None = None
    records: tuple[Record, ...] = ()
    contact: OpenContact | OpenInboundContact | None = None


@dataclass(frozen=True)
class AgentRef:
    staff_id: int
    session_id: int
    expected: AgentState


@dataclass(frozen=True)
class OfferPreviews:
    """Claim one lead per agent (in order, one transaction each, stopping when none is left) and reserve the
    agent for it. Answered by ``PreviewsOffered``."""

    campaign_id: int
    agents: tuple[AgentRef, ...]


@dataclass(frozen=True)
class SkipPreview:
    staff_id: int
    session_id: int
    lead_id: int
    campaign_id: int


@dataclass(frozen=True)
class DialPreview:
    staff_id: int
    session_id: int
    lead_id: int
    campaign_id: int


@dataclass(frozen=True)
class PlaceCallback:
    callback: CallbackFacts
    staff_id: int
    session_id: int
    expected: AgentState


@dataclass(frozen=True)
class Publish:
    event: Event


@dataclass(frozen=True)
class Resume:
    phase: str


Command = Union[Originate, Connect, Play, Hangup, LoginPhone, LogoutPhone, Sync, ClaimLeads, RecordAnswered,
                RecordConnected, FinishAttempt, CompleteDisposition, MissCallback, ChangeAgentState, OfferPreviews,
                SkipPreview, DialPreview, PlaceCallback, Publish, Resume, HandoffStep, EndHandoff, HandoffCallback,
                ExpectInbound,
                K.HoldCall, K.UnholdCall, K.MuteAgent, K.SendDtmf, K.LinkRooms, K.UnlinkRooms, K.ToIvr, K.Monitor,
                K.StopMonitor, K.ControlAnswer]  # call controls (services/dialer/controls.py)


# --- the core's own state --------------------------------------------------------------------------------------


@dataclass
class Call:
    call_id: str
    attempt_id: int
    campaign_id: int
    lead_id: int
    client_id: int | None
    phone: str
    attempt_no: int
    dialled: float  # clock seconds
    agent_id: int | None = None  # pre-assigned (preview, callback) or routed
    callback_id: int | None = None
    state: CallState = CallState.DIALING
    answered: float | None = None
    connected: float | None = None
    amd: str | None = None
    abandoned: bool = False
    server: str = ""  # the PBX server it is up on (from Answered): only agents whose room is there can take it


class InboundState(StrEnum):
    WAITING = "waiting"  # in the queue (routable once parked)
    RESERVING = "reserving"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SORRY = "sorry"  # waited too long: hearing the sorry prompt, a call back booked


@dataclass
class InboundCall:
    """An IVR hand-off: the caller waits on the PBX for an agent."""

    call_id: str
    ivr_session_id: int
    client_id: int | None
    since: datetime  # when the caller asked for an agent (wall)
    lang: str = "zh-CN"
    caller: str = ""
    state: InboundState = InboundState.WAITING
    parked: bool = False  # the PBX reported the caller's channel (it can be moved into a room)
    agent_id: int | None = None
    connected: float | None = None
    sorry_at: float | None = None


@dataclass
class Agent:
    staff_id: int
    session_id: int
    campaign_id: int | None
    phone: str
    state: AgentState
    since: datetime
    call_id: str | None = None
    preview_lead_id: int | None = None
    phone_up: bool = False  # its phone leg is in its room (AgentJoined), not merely dialled
    server: str = ""  # the PBX server of its room
    wrap_deadline: float | None = None
    login_retry_at: float = 0.0
    pending: int = 0  # changes of this agent sent to the database and not answered yet: not offered a call


@dataclass
class CampaignRun:
    id: int
    state: str
    mode: str
    caller_id: str
    amd_policy: str
    leave_message: bool
    pacer: Pacer
    waiting: deque[str] = field(default_factory=deque)
    hopper_empty_until: float = 0.0
    attempts: int = 0
    humans: int = 0
    connected: int = 0
    abandoned: int = 0
    last_board: tuple[object, ...] = ()
    budget: AbandonBudget | None = None  # from the database at the last sync (shared by every process)


def pacer_for(c: CampaignFacts) -> Pacer:
    if c.mode == "ratio":
        return make_pacer("ratio", ratio=c.ratio)
    if c.mode == "predictive":
        return make_pacer("predictive", target_abandon=c.target_abandon)
    return make_pacer(c.mode)


def _agent_state(value: str) -> AgentState:
    return AgentState(value)


def _same_server(agent_server: str, call_server: str) -> bool:
    """A call can reach the agent's room: same PBX server (an empty name: a backend with one server)."""
    return not agent_server or not call_server or agent_server == call_server


@dataclass(frozen=True)
class CoreConfig:
    dialer_id: str = "dialer"
    abandon_after_s: float = 2.0
    sync_s: float = 1.0
    tick_s: float = 1.0
    wallboard_s: float = 1.0
    auto_wrap_up_s: float | None = None
    callback_grace: timedelta = timedelta(hours=2)
    progressive_floor: bool = True
    login_retry_s: float = 30.0  # a phone that will not answer: not every second
    handoff_wait_s: float = 120.0  # a hand-off waiting longer hears the sorry prompt and gets a call back
    handoff_sorry_prompt: str = "cc/{lang}/handoff_sorry"
    sorry_grace_s: float = 60.0  # a sorry prompt whose end the PBX never reports: the hand-off is closed anyway

    @property
    def hold_s(self) -> float:
        """How long a campaign claims no leads after its hopper ran dry or the PBX refused calls."""
        return max(self.sync_s, 5.0)


class CallCore:
    """The dialler's decisions (see the module docstring). Not thread-safe: one driver feeds it."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        self.calls: dict[str, Call] = {}
        self.agents: dict[int, Agent] = {}
        self.campaigns: dict[int, CampaignRun] = {}
        self._next_sync = 0.0
        self._next_tick = 0.0
        self._next_board = 0.0
        self._due_callbacks: tuple[CallbackFacts, ...] = ()
        self.inbound: dict[str, InboundCall] = {}  # IVR hand-offs (inbound calls), by call id
        self._parked: dict[str, float] = {}  # hand-off channels the PBX reported before the database listed them
        self._gone: dict[str, float] = {}  # hand-offs whose caller hung up before the database listed them
        self.phones: dict[int, str] = {}  # staff id -> server of its phone leg in its room (ours or left over)
        self._now = 0.0
        self._wall = datetime.min.replace(tzinfo=timezone.utc)
        self.controls: dict[str, CallControls] = {}  # live-call controls by call id (held, muted, links, monitors)
        self.monitoring: dict[int, str] = {}  # supervisor -> the call they monitor

    # --- queries -------------------------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """The next clock time the core wants a ``Tick`` at."""
        times = [self._next_sync, self._next_tick]
        for run in self.campaigns.values():
            for call_id in run.waiting:
                call = self.calls.get(call_id)
                if call is not None and call.answered is not None:
                    times.append(call.answered + self.config.abandon_after_s)
        times += [a.wrap_deadline for a in self.agents.values() if a.wrap_deadline is not None]
        return min(times)

    def in_flight_leads(self) -> tuple[int, ...]:
        leads = [c.lead_id for c in self.calls.values()]
        leads += [a.preview_lead_id for a in self.agents.values() if a.preview_lead_id is not None]
        return tuple(leads)

    def ready_agents(self, campaign_id: int | None, server: str = "") -> list[Agent]:
        """Ready agents of the campaign (None: of any campaign, for inbound calls) with their phone up (on
        ``server``, when given), longest idle first."""
        ready = [a for a in self.agents.values()
                 if (campaign_id is None or a.campaign_id == campaign_id) and a.state == AgentState.READY
                 and a.phone_up and not a.pending and _same_server(a.server, server)]
        ready.sort(key=lambda a: (a.since, a.staff_id))
        return ready

    def pacing_state(self, run: CampaignRun, now: float, wall: datetime) -> DialerState:
        """What the pacer of ``run`` sees now: the ONE place the pacer's input is built."""
        in_flight = [now - c.dialled for c in self.calls.values()
                     if c.campaign_id == run.id and c.state == CallState.DIALING]
        views = []
        for a in self.agents.values():
            if a.campaign_id != run.id or not a.phone_up:
                continue
            secs = max(0.0, (wall - a.since).total_seconds())
            if a.state == AgentState.READY:
                views.append(AgentView("idle", secs))
            elif a.state in (AgentState.RESERVED, AgentState.TALKING):
                views.append(AgentView("talking", secs if a.state == AgentState.TALKING else 0.0))
            elif a.state == AgentState.WRAP_UP:
                views.append(AgentView("wrap_up", secs))
        return DialerState(now, views, in_flight, budget=run.budget)

    # --- the one entry point -------------------------------------------------------------------------------------

    def handle(self, event: CoreEvent, now: float, wall: datetime) -> list[Command]:
        self._now, self._wall = now, wall
        out: list[Command] = []
        if isinstance(event, Tick):
            if now >= self._next_sync:
                self._next_sync = now + self.config.sync_s
                return [Sync(self.in_flight_leads())]
            self._tick(out)
            return out
        if isinstance(event, Synced):
            self._synced(event, out)
            if event.handoffs is not None:
                self._handoffs_synced(event.handoffs, out)
            out.append(Resume("previews"))  # once the phones are logged in
            return out
        if isinstance(event, Resumed):
            if event.phase == "previews":
                self._offer_previews(out)
                out.append(Resume("callbacks"))
            elif event.phase == "callbacks":
                callbacks, self._due_callbacks = self._due_callbacks, ()
                for cb in callbacks:
                    self._place_callback(cb, out)
                out.append(Resume("tick"))
            elif event.phase == "board":
                self._boards(out)
            else:
                self._tick(out)
            return out
        if isinstance(event, (AgentJoined, AgentLeft)):
            if not event.agent_id.isdigit():
                return out
            staff_id = int(event.agent_id)
            agent = self.agents.get(staff_id)
            if isinstance(event, AgentJoined):
                self.phones[staff_id] = event.server
                if agent is not None:
                    agent.phone_up, agent.server = True, event.server
                    agent.login_retry_at = 0.0
                    self._next_sync = min(self._next_sync, now)  # the next tick offers it a preview, paces on it
            else:
                self.phones.pop(staff_id, None)
                if agent is not None:
                    agent.phone_up = False
            self._serve_waiting(out)
            return out
        if isinstance(event, Connected) and self._transfer_arrived(event, out):
            self._serve_waiting(out)
            return out
        if isinstance(event, (Answered, Connected, Ended, Failed)) and event.call_id not in self.calls:
            if V.handoff_session_id(event.call_id) is not None:  # an inbound call (IVR hand-off)
                self._inbound_event(event, out)
                self._serve_waiting(out)
            return out  # else not ours, or a duplicate after the terminal event
        if isinstance(event, (Answered, Connected, Ended, Failed)):
            call = self.calls.get(event.call_id)
            if call is None:
                return out
            if isinstance(event, Answered):
                self._answered(call, event, out)
            elif isinstance(event, Connected):
                self._connected(call, out)
            elif isinstance(event, Failed):
                kind = Outcome(event.reason) if event.reason in ("busy", "no_answer", "lost") else Outcome.FAILED
                self._finish(call, kind, out, cause=event.cause, cause_text=event.reason)
            else:
                self._ended(call, event, out)
        elif isinstance(event, LeadsClaimed):
            self._leads_claimed(event, out)
        elif isinstance(event, OriginateAccepted):
            call = self.calls.get(event.call_id)
            run = self.campaigns.get(call.campaign_id) if call is not None else None
            if run is not None:
                run.attempts += 1
        elif isinstance(event, OriginateRefused):
            call = self.calls.get(event.call_id)
            if call is not None:
                run = self.campaigns.get(call.campaign_id)
                if event.hold and run is not None:
                    run.hopper_empty_until = max(run.hopper_empty_until, now + self.config.hold_s)
                self._finish(call, Outcome(event.outcome), out, cause_text=event.text[:64], record=False)
        elif isinstance(event, ConnectFailed):
            if not self._transfer_failed(event, out):
                self._connect_failed(event, out)
        elif isinstance(event, AgentChanged):
            self._agent_changed(event, out)
            self._controls_agent_changed(event, out)
        elif isinstance(event, ControlRequested):
            self._control(event, out)
        elif isinstance(event, ControlFailed):
            self._control_failed(event, out)
        elif isinstance(event, PhoneLogin):
            pass  # the phone counts as up when it has joined its room (AgentJoined), not when it is dialled
        elif isinstance(event, PreviewsOffered):
            self._previews_offered(event, out)
        elif isinstance(event, PreviewDialled):
            self._preview_dialled(event, out)
        elif isinstance(event, CallbackResult):
            self._callback_result(event, out)
        else:
            raise TypeError(f"not a dialler core event: {event!r}")
        self._serve_waiting(out)
        return out

    # --- agents --------------------------------------------------------------------------------------------------

    def _change(self, agent: Agent, event: str, out: list[Command], *, reason: str = "",
                attempt_id: int | None = None, records: tuple[Record, ...] = (),
                contact: OpenContact | OpenInboundContact | None = None) -> bool:
        """Apply an agent change at once and ask the database for it; False (and only the records are written)
        when the table does not allow it from the agent's state."""
        try:
            new = AgentState(agent_transition(agent.state, event))
        except RuleError:
            if records:
                out.extend(records)
            return False
        out.append(ChangeAgentState(agent.staff_id, agent.session_id, event, agent.state, reason, attempt_id,
                                    records, contact))
        agent.pending += 1
        self._take(agent, new, self._wall)
        return True

    def _take(self, agent: Agent, state: AgentState, since: datetime | None) -> None:
        if agent.state != state:
            agent.wrap_deadline = None
        agent.state = state
        if since is not None:
            agent.since = since
        if state == AgentState.WRAP_UP and agent.wrap_deadline is None and self.config.auto_wrap_up_s is not None:
            agent.wrap_deadline = self._now + self.config.auto_wrap_up_s
        if state not in (AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP):
            agent.call_id = None

    def _agent_changed(self, ev: AgentChanged, out: list[Command]) -> None:
        self._inbound_agent_changed(ev, out)
        agent = self.agents.get(ev.staff_id)
        reserving = next((c for c in self.calls.values()
                          if c.state == CallState.RESERVING and c.agent_id == ev.staff_id), None)
        if ev.event != "reserve":
            reserving = None
        if agent is not None:
            agent.pending = max(0, agent.pending - 1)
        if agent is None or ev.state is None:  # the session is over (logged out on the web)
            self.agents.pop(ev.staff_id, None)
            if reserving is not None:
                self._requeue(reserving)
            return
        if ev.applied:
            out.append(Publish(AgentStateChanged(ev.staff_id, ev.state, ev.reason,
                                                 ev.since.isoformat() if ev.since else None, ev.attempt_id)))
            if reserving is not None:
                reserving.state = CallState.CONNECTING
                out.append(Connect(reserving.call_id, agent.staff_id))
        elif reserving is not None:
            self._requeue(reserving)
            if agent.call_id == reserving.call_id:
                agent.call_id = None
        if agent.pending == 0:  # no later change of ours on its way: the row is the truth
            self._take(agent, _agent_state(ev.state), ev.since)
        call = next((c for c in self.calls.values() if c.attempt_id == ev.attempt_id), None)
        if ev.contact_id is not None and call is not None:
            out.append(Publish(ContactOpened(ev.staff_id, ev.contact_id, call.client_id, call.attempt_id,
                                             call.campaign_id)))

    def _requeue(self, call: Call) -> None:
        call.state = CallState.WAITING
        call.agent_id = None
        run = self.campaigns.get(call.campaign_id)
        if run is not None and call.call_id not in run.waiting:
            run.waiting.appendleft(call.call_id)

    def _enqueue(self, call: Call) -> None:
        """A newly answered call waits behind those already waiting."""
        call.state = CallState.WAITING
        run = self.campaigns.get(call.campaign_id)
        if run is not None and call.call_id not in run.waiting:
            run.waiting.append(call.call_id)

    def _serve_waiting(self, out: list[Command]) -> None:
        """Waiting calls, oldest first, each to the longest-idle ready agent on its server (a call on a server
        with no free agent does not hold back the calls behind it on another)."""
        for run in self.campaigns.values():
            for call_id in list(run.waiting):
                call = self.calls.get(call_id)
                if call is None or call.state != CallState.WAITING:
                    run.waiting.remove(call_id)
                    continue
                ready = self.ready_agents(call.campaign_id, call.server)
                if not ready:
                    continue
                run.waiting.remove(call_id)
                self._route(call, ready[0], out)
        self._serve_inbound(out)  # after the answered outbound calls (their 2 s abandon rule comes first)

    def _route(self, call: Call, agent: Agent, out: list[Command], records: tuple[Record, ...] = ()) -> None:
        call.state = CallState.RESERVING
        call.agent_id = agent.staff_id
        agent.call_id = call.call_id
        self._change(agent, "reserve", out, reason="route", attempt_id=call.attempt_id, records=records)

    # --- sync ----------------------------------------------------------------------------------------------------

    def _synced(self, ev: Synced, out: list[Command]) -> None:
        seen = set()
        for c in ev.campaigns:
            seen.add(c.id)
            run = self.campaigns.get(c.id)
            if run is None or run.mode != c.mode:
                run = CampaignRun(c.id, c.state, c.mode, c.caller_id, c.amd_policy, c.leave_message, pacer_for(c))
                self.campaigns[c.id] = run
            run.state, run.caller_id, run.amd_policy, run.leave_message = c.state, c.caller_id, c.amd_policy, c.leave_message
            run.budget = c.budget
        for cid, run in list(self.campaigns.items()):
            if cid not in seen:
                run.state = CampaignState.FINISHED
                if not any(call.campaign_id == cid for call in self.calls.values()):
                    del self.campaigns[cid]
        present = set()
        for row in ev.agents:
            present.add(row.staff_id)
            agent = self.agents.get(row.staff_id)
            if agent is None or agent.session_id != row.session_id:
                agent = Agent(row.staff_id, row.session_id, row.campaign_id, row.phone, _agent_state(row.state),
                              row.since)
                if row.staff_id in self.phones:  # its leg is in its room already (left up by a previous process)
                    agent.phone_up, agent.server = True, self.phones[row.staff_id]
                held = next((c for c in self.calls.values() if c.agent_id == row.staff_id
                             and c.state == CallState.CONNECTED), None)
                if held is not None:  # an adopted call is with this agent
                    agent.call_id = held.call_id
                self.agents[row.staff_id] = agent
            agent.campaign_id = row.campaign_id
            agent.phone = row.phone
            if agent.state != row.state:
                self._take(agent, _agent_state(row.state), row.since)
            elif agent.state == AgentState.WRAP_UP:
                self._take(agent, agent.state, None)  # a wrap-up deadline when none is set
            agent.preview_lead_id = row.preview_lead_id
            if not agent.phone_up and self._now >= agent.login_retry_at:
                agent.login_retry_at = self._now + self.config.login_retry_s
                out.append(LoginPhone(row.staff_id, row.phone))
        for staff_id in [s for s in self.agents if s not in present]:
            agent = self.agents.pop(staff_id)
            if agent.phone_up:
                self.phones.pop(staff_id, None)
                out.append(LogoutPhone(staff_id))
        if ev.logged_in is not None:  # a leg left up for an agent nobody has logged in any more: hang it up
            for staff_id in [s for s in self.phones if s not in self.agents and s not in ev.logged_in]:
                del self.phones[staff_id]
                out.append(LogoutPhone(staff_id))
        for adopted in ev.adopted:
            self._adopt(adopted, out)
        for call_id in ev.hangups:
            if call_id not in self.calls:
                out.append(Hangup(call_id))
        for row in ev.agents:
            if row.preview_action is not None:
                self._preview_action(row, out)
        self._due_callbacks = ev.callbacks

    def _adopt(self, a: AdoptedCall, out: list[Command]) -> None:
        """Re-attach a call a previous dialler placed: connected to the agent whose room it is in, else answered
        and waiting for an agent, else still dialling; it then ends like any other call."""
        new = a.call
        if new.call_id in self.calls:
            return
        self.calls[new.call_id] = call = Call(new.call_id, new.attempt_id, new.campaign_id, new.lead_id,
                                              new.client_id, new.phone, new.attempt_no, self._now, None,
                                              new.callback_id, server=a.server)
        def ago(at: datetime | None) -> float:
            assert at is not None
            return max(0.0, (self._wall - at).total_seconds())

        if a.answered_at is not None or a.connected_at is not None:
            call.answered = self._now - ago(a.answered_at or a.connected_at)
            call.amd = a.amd
            call.dialled = call.answered
        if a.connected_at is not None and a.room_agent is not None:
            call.state = CallState.CONNECTED
            call.connected = self._now - ago(a.connected_at)
            call.agent_id = a.room_agent
            agent = self.agents.get(a.room_agent)
            if agent is not None and agent.call_id in (None, call.call_id):
                agent.call_id = call.call_id
        elif call.answered is not None:
            self._enqueue(call)  # up but in no agent's room: an agent takes it, or it hears the safe harbour
        else:
            call.dialled = self._now

    # --- preview mode --------------------------------------------------------------------------------------------

    def _offer_previews(self, out: list[Command]) -> None:
        for run in self.campaigns.values():
            if run.state != CampaignState.RUNNING or run.mode != "preview":
                continue
            ready = [a for a in self.ready_agents(run.id) if a.preview_lead_id is None]
            for a in ready:
                a.pending += 1
            if ready:
                out.append(OfferPreviews(run.id, tuple(AgentRef(a.staff_id, a.session_id, a.state) for a in ready)))

    def _previews_offered(self, ev: PreviewsOffered, out: list[Command]) -> None:
        for offer in ev.offers:
            agent = self.agents.get(offer.staff_id)
            if agent is None:
                continue
            agent.pending = max(0, agent.pending - 1)
            if offer.state is None:
                self.agents.pop(offer.staff_id, None)
                continue
            self._take(agent, _agent_state(offer.state), offer.since)
            if offer.lead is None:
                continue
            lead = offer.lead
            agent.preview_lead_id = lead.lead_id
            out.append(Publish(AgentStateChanged(agent.staff_id, agent.state, "preview",
                                                 offer.since.isoformat() if offer.since else None)))
            out.append(Publish(PreviewOffered(agent.staff_id, lead.lead_id, ev.campaign_id, lead.client_id,
                                              lead.name, lead.phone, lead.attempt_no)))

    def _preview_action(self, row: AgentFacts, out: list[Command]) -> None:
        agent = self.agents.get(row.staff_id)
        run = self.campaigns.get(row.campaign_id if row.campaign_id is not None else -1)
        lead_id = row.preview_lead_id
        if agent is None or run is None or lead_id is None or agent.state != AgentState.RESERVED:
            return
        agent.preview_lead_id = None
        if row.preview_action == "skip":
            agent.pending += 1  # answered by AgentChanged
            out.append(SkipPreview(agent.staff_id, agent.session_id, lead_id, run.id))
        else:
            out.append(DialPreview(agent.staff_id, agent.session_id, lead_id, run.id))

    def _preview_dialled(self, ev: PreviewDialled, out: list[Command]) -> None:
        agent = self.agents.get(ev.staff_id)
        if agent is None:
            return
        if ev.call is None:
            self._change(agent, "release", out, reason="preview_gone")
            return
        self._start(ev.call, out)
        agent.call_id = ev.call.call_id

    # --- callbacks -----------------------------------------------------------------------------------------------

    def _place_callback(self, cb: CallbackFacts, out: list[Command]) -> None:
        run = self.campaigns.get(cb.campaign_id if cb.campaign_id is not None else -1)
        if run is None or run.state != CampaignState.RUNNING or cb.lead_id is None:
            return
        if self._wall - cb.due_at > self.config.callback_grace:
            out.append(MissCallback(cb.id))
            return
        ready = self.ready_agents(run.id)
        if cb.agent_only:
            ready = [a for a in ready if a.staff_id == cb.owner_id]
        if not ready:
            return
        agent = ready[0]
        out.append(PlaceCallback(cb, agent.staff_id, agent.session_id, agent.state))
        agent.pending += 1  # held for it until the result comes

    def _callback_result(self, ev: CallbackResult, out: list[Command]) -> None:
        agent = self.agents.get(ev.staff_id)
        if agent is None:
            return
        agent.pending = max(0, agent.pending - 1)
        if ev.state is None:
            self.agents.pop(ev.staff_id, None)
            return
        self._take(agent, _agent_state(ev.state), ev.since)
        if ev.call is None:
            return
        call = ev.call
        out.append(Publish(AgentStateChanged(agent.staff_id, agent.state, "callback",
                                             ev.since.isoformat() if ev.since else None, call.attempt_id)))
        out.append(Publish(CallbackPlaced(agent.staff_id, ev.callback_id, call.lead_id, call.attempt_id,
                                          call.campaign_id)))
        self._start(call, out)
        agent.call_id = call.call_id

    # --- the tick ------------------------------------------------------------------------------------------------

    def _tick(self, out: list[Command]) -> None:
        now = self._now
        for agent in list(self.agents.values()):
            if (agent.wrap_deadline is not None and now >= agent.wrap_deadline and agent.state == AgentState.WRAP_UP
                    and not agent.pending):
                records: tuple[Record, ...] = (CompleteDisposition(agent.call_id),) if agent.call_id else ()
                agent.wrap_deadline = None
                self._change(agent, "ready", out, reason="auto_wrap_up", records=records)
        for run in self.campaigns.values():
            keep: deque[str] = deque()
            for call_id in run.waiting:
                call = self.calls.get(call_id)
                if call is None or call.state != CallState.WAITING:
                    continue
                if call.answered is not None and now >= call.answered + self.config.abandon_after_s:
                    call.state = CallState.ABANDONING
                    call.abandoned = True
                    out.append(Play(call.call_id, SAFE_HARBOUR_PROMPT, or_hangup=True))
                else:
                    keep.append(call_id)
            run.waiting = keep
        self._inbound_tick(out)
        self._serve_waiting(out)
        for run in list(self.campaigns.values()):
            if run.state != CampaignState.RUNNING or run.mode == "preview" or now < run.hopper_empty_until:
                continue
            state = self.pacing_state(run, now, self._wall)
            n = run.pacer.calls_to_place(state)
            if self.config.progressive_floor:
                # never fewer calls than idle agents not covered by a call in flight or waiting: such calls
                # always find an agent, so this cannot abandon; it keeps a pacer that holds back from stalling
                covered = len(state.in_flight) + len(run.waiting)
                n = max(n, sum(1 for v in state.agents if v.state == "idle") - covered)
            if n > 0:
                out.append(ClaimLeads(run.id, n))
        if now >= self._next_tick:
            self._next_tick = now + self.config.tick_s
        if now >= self._next_board:
            self._next_board = now + self.config.wallboard_s
            out.append(Resume("board"))  # the figures once this round's calls are placed

    def _leads_claimed(self, ev: LeadsClaimed, out: list[Command]) -> None:
        run = self.campaigns.get(ev.campaign_id)
        if run is not None and len(ev.calls) < ev.wanted:
            run.hopper_empty_until = self._now + self.config.hold_s
        for call in ev.calls:
            self._start(call, out)

    def _start(self, new: NewCall, out: list[Command]) -> None:
        run = self.campaigns.get(new.campaign_id)
        self.calls[new.call_id] = Call(new.call_id, new.attempt_id, new.campaign_id, new.lead_id, new.client_id,
                                       new.phone, new.attempt_no, self._now, new.agent_id, new.callback_id)
        variables = {V.CC_CALL_ID: new.call_id, V.CC_CAMPAIGN_ID: str(new.campaign_id),
                     V.CC_CLIENT_ID: str(new.client_id or ""),
                     V.CC_AMD: "0" if run is not None and run.amd_policy == "off" else "1"}  # AMD per campaign
        out.append(Originate(new.call_id, new.phone, run.caller_id if run is not None else "", variables,
                             new.campaign_id))

    def _boards(self, out: list[Command]) -> None:
        for run in self.campaigns.values():
            agents: dict[str, int] = {}
            for a in self.agents.values():
                if a.campaign_id == run.id:
                    agents[str(a.state)] = agents.get(str(a.state), 0) + 1
            in_flight = sum(1 for c in self.calls.values() if c.campaign_id == run.id)
            board = (run.state, in_flight, len(run.waiting), tuple(sorted(agents.items())), run.attempts,
                     run.humans, run.connected, run.abandoned)
            if board == run.last_board:
                continue
            run.last_board = board
            out.append(Publish(DialerBoard(
                self.config.dialer_id, run.id, str(run.state), run.mode, in_flight, len(run.waiting), agents,
                run.attempts, run.humans, run.connected, run.abandoned,
                round(run.abandoned / run.humans, 4) if run.humans else 0.0)))

    # --- port events ---------------------------------------------------------------------------------------------

    def _answered(self, call: Call, event: Answered, out: list[Command]) -> None:
        if call.state != CallState.DIALING:
            return
        run = self.campaigns.get(call.campaign_id)
        # the abandon clock runs from the pick-up (AMD listened before the port could report the answer)
        call.answered = self._now if event.picked_up_at is None else min(self._now, event.picked_up_at)
        call.server = event.server
        policy: Literal["human", "machine"] = "machine" if run is not None and run.amd_policy == "machine" else "human"
        call.amd = notsure_as(event.amd, policy)
        mark = RecordAnswered(call.attempt_id, event.amd, (event.amd_cause or "")[:64])
        if call.amd == "machine":
            call.state = CallState.MACHINE
            out.append(mark)
            if run is not None and run.leave_message:
                out.append(Play(call.call_id, MACHINE_PROMPT))
            else:
                out.append(Hangup(call.call_id))
            return
        if run is not None:
            run.humans += 1
        if call.agent_id is not None:  # preview / callback: the agent is waiting for this call
            out.append(mark)
            agent = self.agents.get(call.agent_id)
            if (agent is not None and agent.state == AgentState.RESERVED and agent.call_id == call.call_id
                    and agent.phone_up and _same_server(agent.server, call.server)):
                call.state = CallState.CONNECTING
                out.append(Connect(call.call_id, agent.staff_id))
                return
            call.agent_id = None  # hand-off: the agent it was placed for cannot take it; route it
            if agent is not None and agent.state == AgentState.RESERVED and agent.call_id == call.call_id:
                self._change(agent, "release", out, reason="phone_elsewhere", attempt_id=call.attempt_id)
            self._enqueue(call)
            return
        ready = self.ready_agents(call.campaign_id, call.server)
        if ready:
            self._route(call, ready[0], out, records=(mark,))
            return
        out.append(mark)
        self._enqueue(call)

    def _connect_failed(self, ev: ConnectFailed, out: list[Command]) -> None:
        if ev.call_id in self.inbound:
            self._inbound_connect_failed(self.inbound[ev.call_id], out)
            return
        call = self.calls.get(ev.call_id)
        if call is None or call.state != CallState.CONNECTING:
            return
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        if ev.gone:  # waiting for its end event, out of the queue (else every ready agent in turn would be tried)
            call.state, call.agent_id = CallState.WAITING, None
        else:
            self._requeue(call)
        if agent is not None:
            if not ev.gone:
                agent.phone_up = False  # until it joins again (the next login, which the PBX answers from the room)
                self.phones.pop(agent.staff_id, None)
            if agent.call_id == call.call_id:
                self._change(agent, "release", out, reason="connect_failed", attempt_id=call.attempt_id)

    def _connected(self, call: Call, out: list[Command]) -> None:
        if call.state == CallState.CONNECTED:
            return
        call.state = CallState.CONNECTED
        call.connected = self._now
        run = self.campaigns.get(call.campaign_id)
        if run is not None:
            run.connected += 1
        mark = RecordConnected(call.attempt_id, call.agent_id)
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        if agent is None or agent.call_id not in (None, call.call_id):
            out.append(mark)
            return
        agent.call_id = call.call_id
        contact = OpenContact(call.client_id, call.attempt_id, call.lead_id, call.campaign_id, call.attempt_no)
        # sent even when the agent is not reserved any more (the web moved them): the call is with them all the
        # same, so its desk contact opens (``open_contact`` moves a ready agent on to talking)
        out.append(ChangeAgentState(agent.staff_id, agent.session_id, "connect", AgentState.RESERVED, "call",
                                    call.attempt_id, (mark,), contact))
        agent.pending += 1
        if agent.state == AgentState.RESERVED:
            self._take(agent, AgentState.TALKING, self._wall)

    def _ended(self, call: Call, event: Ended, out: list[Command]) -> None:
        if call.state == CallState.MACHINE:
            self._finish(call, Outcome.MACHINE, out, cause=event.cause, cause_text=event.cause_text)
        elif call.state == CallState.CONNECTED:
            talk = event.talk_s if event.talk_s is not None else (self._now - (call.connected or 0.0))
            self._finish(call, Outcome.HUMAN, out, cause=event.cause, cause_text=event.cause_text, talk_s=talk)
        elif call.abandoned:
            self._finish(call, Outcome.ABANDONED, out, cause=event.cause, cause_text=event.cause_text)
        elif call.answered is not None:  # the person hung up before we reached them (within the grace period)
            self._finish(call, Outcome.HUMAN, out, cause=event.cause, cause_text=event.cause_text,
                         lead_outcome="abandoned")
        else:
            self._finish(call, Outcome.NO_ANSWER, out, cause=event.cause, cause_text=event.cause_text)

    def _finish(self, call: Call, outcome: Outcome, out: list[Command], *, cause: int | None = None,
                cause_text: str = "", talk_s: float | None = None, lead_outcome: str | None = None,
                record: bool = True) -> None:
        self._controls_ended(call.call_id, out)
        self.calls.pop(call.call_id, None)
        run = self.campaigns.get(call.campaign_id)
        if run is not None and call.call_id in run.waiting:
            run.waiting.remove(call.call_id)
        abandoned = outcome == Outcome.ABANDONED
        close = FinishAttempt(call.attempt_id, outcome, cause, cause_text, talk_s, lead_outcome, abandoned,
                              call.callback_id, "done" if call.connected is not None else "missed")
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        if agent is not None and agent.call_id == call.call_id and agent.state in (AgentState.RESERVED,
                                                                                 AgentState.TALKING):
            event = "hangup" if agent.state == AgentState.TALKING else "release"
            self._change(agent, event, out, reason=str(outcome), attempt_id=call.attempt_id, records=(close,))
        else:
            out.append(close)
        if run is not None and record:
            kind = _PACED.get(outcome)
            if kind is not None:
                ring = (call.answered if call.answered is not None else self._now) - call.dialled
                connected_talk = talk_s if outcome == Outcome.HUMAN and call.connected is not None else None
                run.pacer.record(AttemptOutcome(kind, max(0.0, ring), connected_talk, abandoned))
            if abandoned:
                run.abandoned += 1
        out.append(Publish(AttemptEnded(call.attempt_id, call.campaign_id, call.lead_id, str(outcome), abandoned)))



    # --- inbound calls: IVR hand-offs ----------------------------------------------------------------------------

    def _handoffs_synced(self, handoffs: tuple[HandoffFacts, ...], out: list[Command]) -> None:
        listed = set()
        for h in handoffs:
            listed.add(h.call_id)
            if h.call_id in self.inbound:
                continue
            if self._gone.pop(h.call_id, None) is not None:  # the caller hung up before we knew of the call
                out.append(EndHandoff(h.ivr_session_id, "caller_hangup"))
                continue
            call = InboundCall(h.call_id, h.ivr_session_id, h.client_id, h.since, h.lang, h.caller)
            call.parked = self._parked.pop(h.call_id, None) is not None
            self.inbound[h.call_id] = call
            out.append(ExpectInbound(h.call_id))
        for call_id, call in list(self.inbound.items()):
            if call.state == InboundState.WAITING and call_id not in listed:
                del self.inbound[call_id]  # ended (recorded elsewhere) or another dialler has it
        horizon = self._now - 600.0
        for early in (self._parked, self._gone):
            for call_id, at in list(early.items()):
                if at < horizon:
                    del early[call_id]

    def _inbound_event(self, event: Answered | Connected | Ended | Failed, out: list[Command]) -> None:
        call = self.inbound.get(event.call_id)
        if isinstance(event, Answered):
            if call is None:
                self._parked[event.call_id] = self._now  # the database lists it at the next sync
                while len(self._parked) > 1000:
                    self._parked.pop(next(iter(self._parked)))
            else:
                call.parked = True
            return
        if call is None:
            if isinstance(event, (Ended, Failed)) and self._parked.pop(event.call_id, None) is not None:
                self._gone[event.call_id] = self._now
                while len(self._gone) > 1000:
                    self._gone.pop(next(iter(self._gone)))
            return
        if isinstance(event, Connected):
            self._inbound_connected(call, out)
        else:
            talk = event.talk_s if isinstance(event, Ended) else None
            self._inbound_ended(call, out, talk)

    def _serve_inbound(self, out: list[Command]) -> None:
        waiting = sorted((c for c in self.inbound.values() if c.state == InboundState.WAITING and c.parked),
                         key=lambda c: (c.since, c.ivr_session_id))
        for call in waiting:
            ready = self.ready_agents(None)
            if not ready:
                return
            agent = ready[0]
            call.state = InboundState.RESERVING
            call.agent_id = agent.staff_id
            agent.call_id = call.call_id
            self._change(agent, "reserve", out, reason="ivr_handoff")

    def _inbound_agent_changed(self, ev: AgentChanged, out: list[Command]) -> None:
        call = next((c for c in self.inbound.values() if c.agent_id == ev.staff_id
                     and c.state in (InboundState.RESERVING, InboundState.CONNECTED)), None)
        if call is None:
            return
        if call.state == InboundState.CONNECTED:
            if ev.contact_id is not None and ev.event == "connect":
                out.append(Publish(ContactOpened(ev.staff_id, ev.contact_id, call.client_id,
                                                 ivr_session_id=call.ivr_session_id)))
            return
        if ev.event != "reserve":
            return
        agent = self.agents.get(ev.staff_id)
        if ev.applied and agent is not None and ev.state is not None:
            call.state = InboundState.CONNECTING
            out.append(Connect(call.call_id, ev.staff_id))
            return
        call.state, call.agent_id = InboundState.WAITING, None  # the next agent (still oldest first)
        if agent is not None and agent.call_id == call.call_id:
            agent.call_id = None

    def _inbound_connect_failed(self, call: InboundCall, out: list[Command]) -> None:
        if call.state != InboundState.CONNECTING:
            return
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        call.state, call.agent_id = InboundState.WAITING, None
        call.parked = False  # routable again when the PBX reports the channel (the dialplan repeats it)
        if agent is not None and agent.call_id == call.call_id:
            self._change(agent, "release", out, reason="connect_failed")

    def _inbound_connected(self, call: InboundCall, out: list[Command]) -> None:
        if call.state == InboundState.CONNECTED:
            return
        call.state = InboundState.CONNECTED
        call.connected = self._now
        mark = HandoffStep(call.ivr_session_id, "agent_connected", call.agent_id)
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        if agent is None or agent.call_id not in (None, call.call_id):
            out.append(mark)
            return
        agent.call_id = call.call_id
        out.append(ChangeAgentState(agent.staff_id, agent.session_id, "connect", AgentState.RESERVED,
                                    "ivr_handoff", None, (mark,),
                                    OpenInboundContact(call.client_id, call.ivr_session_id)))
        agent.pending += 1
        if agent.state == AgentState.RESERVED:
            self._take(agent, AgentState.TALKING, self._wall)

    def _inbound_ended(self, call: InboundCall, out: list[Command], talk_s: float | None) -> None:
        self._controls_ended(call.call_id, out)
        self.inbound.pop(call.call_id, None)
        if call.state == InboundState.CONNECTED:
            reason = "completed"
            if talk_s is None and call.connected is not None:
                talk_s = self._now - call.connected
        else:
            reason = "handoff_timeout" if call.state == InboundState.SORRY else "caller_hangup"
            talk_s = None
        end = EndHandoff(call.ivr_session_id, reason, talk_s)
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        if agent is not None and agent.call_id == call.call_id and agent.state in (AgentState.RESERVED,
                                                                                 AgentState.TALKING):
            event = "hangup" if agent.state == AgentState.TALKING else "release"
            self._change(agent, event, out, reason="ivr_handoff", records=(end,))
        else:
            out.append(end)

    def _inbound_tick(self, out: list[Command]) -> None:
        limit = timedelta(seconds=self.config.handoff_wait_s)
        for call in list(self.inbound.values()):
            if call.state == InboundState.SORRY:
                if call.sorry_at is not None and self._now - call.sorry_at >= self.config.sorry_grace_s:
                    self._inbound_ended(call, out, None)  # the PBX never told us the end
                continue
            if call.state != InboundState.WAITING or self._wall - call.since < limit:
                continue
            out.append(HandoffCallback(call.ivr_session_id, call.client_id, call.caller))
            if call.parked:
                call.state, call.sorry_at = InboundState.SORRY, self._now
                out.append(Play(call.call_id, self.config.handoff_sorry_prompt.format(lang=call.lang),
                                or_hangup=True))
            else:  # the PBX never reported the caller's channel: nobody is there to hear a prompt
                call.state = InboundState.SORRY
                self._inbound_ended(call, out, None)

    # --- call controls (issue 13; the table is in services/dialer/controls.py) ---------------------------------

    def _live_call(self, call_id: str) -> Call | InboundCall | None:
        """Our call ``call_id`` while it is connected to an agent (outbound or an IVR hand-off)."""
        call: Call | InboundCall | None = self.calls.get(call_id) or self.inbound.get(call_id)
        if call is None or call.state != "connected":
            return None
        return call

    def _attempt_of(self, call: Call | InboundCall) -> int | None:
        return call.attempt_id if isinstance(call, Call) else None

    def _contact_for(self, call: Call | InboundCall) -> OpenContact | OpenInboundContact:
        if isinstance(call, Call):
            return OpenContact(call.client_id, call.attempt_id, call.lead_id, call.campaign_id, call.attempt_no)
        return OpenInboundContact(call.client_id, call.ivr_session_id)

    def _server_of(self, call: Call | InboundCall) -> str:
        if isinstance(call, Call):
            return call.server
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        return agent.server if agent is not None else ""

    def _control(self, ev: ControlRequested, out: list[Command]) -> None:
        def answer(ok: bool, reason: str = "") -> None:
            out.append(K.ControlAnswer(ev.request_id, ok, reason))

        if ev.kind not in K.CONTROL_KINDS:
            return answer(False, "unknown_control")
        call = self._live_call(ev.call_id)
        if call is None:
            return answer(False, "no_live_call")
        ctl = self.controls.setdefault(call.call_id, CallControls())
        owner = self.agents.get(call.agent_id) if call.agent_id is not None else None
        rid, cid = ev.request_id, call.call_id
        if ev.kind in K.MONITOR_KINDS:
            return self._monitor(ev, call, ctl, owner, out)
        if ev.kind == "conference_leave" and ctl.conference is not None and ev.staff_id == ctl.conference:
            owner = self.agents.get(call.agent_id) if call.agent_id is not None else None
        elif owner is None or owner.staff_id != ev.staff_id:
            return answer(False, "not_your_call")
        if owner is None:
            return answer(False, "not_your_call")
        k = ev.kind
        if ctl.transfer_to is not None:
            return answer(False, "transfer_in_progress")
        if k in ("hold", "resume"):
            if ctl.consult is not None:
                return answer(False, "consult_in_progress")
            if (k == "hold") == ctl.held:
                return answer(True, "already")
            ctl.held = k == "hold"
            out.append(K.HoldCall(rid, cid) if ctl.held else K.UnholdCall(rid, cid, owner.staff_id))
            return answer(True)
        if k in ("mute", "unmute"):
            if (k == "mute") == ctl.muted:
                return answer(True, "already")
            ctl.muted = k == "mute"
            out.append(K.MuteAgent(rid, cid, owner.staff_id, ctl.muted))
            return answer(True)
        if k == "dtmf":
            if not ev.digits or any(c not in "0123456789*#ABCD" for c in ev.digits) or len(ev.digits) > 32:
                return answer(False, "bad_digits")
            if ctl.held:
                return answer(False, "on_hold")
            out.append(K.SendDtmf(rid, cid, ev.digits))
            return answer(True)
        if k in K.TARGETED_KINDS or k in ("transfer_ivr",):
            if ctl.conference is not None:
                return answer(False, "conference_in_progress")
            if k != "conference" and ctl.consult is not None:
                return answer(False, "consult_in_progress")
        if k in K.TARGETED_KINDS and not (k == "conference" and ctl.consult is not None
                                          and ctl.consult == ev.target):
            target = self.agents.get(ev.target) if ev.target is not None else None
            if target is None or target.staff_id == owner.staff_id:
                return answer(False, "no_such_agent")
            if (target.state != AgentState.READY or not target.phone_up or target.pending
                    or not _same_server(target.server, self._server_of(call))):
                return answer(False, "agent_not_ready")
            if k == "transfer":  # the call stays with its agent until it has reached the target's room
                ctl.transfer_to, target.call_id = target.staff_id, cid
                self._change(target, "reserve", out, reason="transfer", attempt_id=self._attempt_of(call))
                return answer(True)  # Connect follows the reservation (_controls_agent_changed)
            if k == "consult":
                if not ctl.held:
                    ctl.held = True
                    out.append(K.HoldCall(rid, cid))
                ctl.consult, target.call_id, ctl.link_request = target.staff_id, cid, rid
                self._change(target, "reserve", out, reason="consult", attempt_id=self._attempt_of(call))
                return answer(True)  # LinkRooms follows the reservation (a refused one leaves nothing to undo)
            # a three-way conference: the second agent's room is linked while the customer stays in the room
            ctl.conference, target.call_id, ctl.link_request = target.staff_id, cid, rid
            self._change(target, "reserve", out, reason="conference", attempt_id=self._attempt_of(call))
            self._change(target, "connect", out, reason="conference", attempt_id=self._attempt_of(call),
                         contact=self._contact_for(call))
            return answer(True)  # LinkRooms follows the connection
        if k == "conference":  # the consulted agent stays: the customer comes back into the linked rooms
            partner = self.agents.get(ctl.consult) if ctl.consult is not None else None
            ctl.conference, ctl.consult = ctl.consult, None
            if partner is not None:
                self._change(partner, "connect", out, reason="conference", attempt_id=self._attempt_of(call),
                             contact=self._contact_for(call))
            ctl.held = False
            out.append(K.UnholdCall(rid, cid, owner.staff_id))
            return answer(True)
        if k in ("consult_complete", "consult_cancel"):
            partner = self.agents.get(ctl.consult) if ctl.consult is not None else None
            if ctl.consult is None:
                return answer(False, "no_consult")
            other, ctl.consult = ctl.consult, None
            out.append(K.UnlinkRooms(rid, cid, owner.staff_id, other))
            if k == "consult_cancel" or partner is None or partner.state != AgentState.RESERVED:
                if partner is not None and partner.state == AgentState.RESERVED:
                    self._change(partner, "release", out, reason="consult_cancel")
                ctl.held = False
                out.append(K.UnholdCall(rid, cid, owner.staff_id))
                return answer(k == "consult_cancel", "" if k == "consult_cancel" else "agent_gone")
            ctl.transfer_to = partner.staff_id  # the call is the partner's once it reaches their room
            out.append(Connect(cid, partner.staff_id))
            return answer(True)
        if k == "conference_leave":
            if ctl.conference is None:
                return answer(False, "no_conference")
            self._end_conference(call, ctl, out, rid)
            return answer(True)
        if k == "transfer_ivr":
            if ev.menu and not all(c.isalnum() or c in "._-" for c in ev.menu):
                return answer(False, "bad_menu")
            self._hand_over(call, ctl, owner, "to_ivr", out)
            call.agent_id = None
            ctl.held = False
            out.append(K.ToIvr(rid, cid, ev.menu))
            return answer(True)
        return answer(False, "unknown_control")

    def _hand_over(self, call: Call | InboundCall, ctl: CallControls, owner: Agent, reason: str,
                   out: list[Command]) -> None:
        """The agent on the call lets it go (a transfer, the IVR): unmuted, to wrap-up, no longer holding it."""
        if ctl.muted:
            ctl.muted = False
            out.append(K.MuteAgent(0, call.call_id, owner.staff_id, False))
        if owner.state == AgentState.TALKING:
            self._change(owner, "hangup", out, reason=reason, attempt_id=self._attempt_of(call))
        owner.call_id = None

    def _end_conference(self, call: Call | InboundCall, ctl: CallControls, out: list[Command], rid: int = 0) -> None:
        partner = self.agents.get(ctl.conference) if ctl.conference is not None else None
        other, ctl.conference = ctl.conference, None
        linked, ctl.link_request = ctl.link_request is None, None
        if other is not None and call.agent_id is not None and linked:
            out.append(K.UnlinkRooms(rid, call.call_id, call.agent_id, other))
        if partner is not None and partner.call_id == call.call_id:
            if partner.state == AgentState.TALKING:
                self._change(partner, "hangup", out, reason="conference_end", attempt_id=self._attempt_of(call))
            elif partner.state == AgentState.RESERVED:
                self._change(partner, "release", out, reason="conference_end")
            partner.call_id = None

    def _monitor(self, ev: ControlRequested, call: Call | InboundCall, ctl: CallControls, owner: Agent | None,
                 out: list[Command]) -> None:
        rid, sup = ev.request_id, ev.staff_id
        if ev.kind == "monitor_stop":
            if sup not in ctl.monitors:
                out.append(K.ControlAnswer(rid, True, "already"))
                return
            del ctl.monitors[sup]
            self.monitoring.pop(sup, None)
            out.append(K.StopMonitor(rid, call.call_id, sup))
            out.append(K.ControlAnswer(rid, True))
            return
        if owner is None or not ev.phone:
            out.append(K.ControlAnswer(rid, False, "no_live_call" if owner is None else "no_supervisor_phone"))
            return
        if sup in self.agents and self.agents[sup].call_id is not None:
            out.append(K.ControlAnswer(rid, False, "supervisor_on_a_call"))
            return
        elsewhere = self.monitoring.get(sup)
        if elsewhere is not None:  # one call at a time: the previous monitor (or mode) ends first
            prev = self.controls.get(elsewhere)
            if prev is not None:
                prev.monitors.pop(sup, None)
            out.append(K.StopMonitor(rid, elsewhere, sup))
        mode: MonitorMode = "listen" if ev.kind == "listen" else "whisper" if ev.kind == "whisper" else "barge"
        ctl.monitors[sup] = mode
        self.monitoring[sup] = call.call_id
        out.append(K.Monitor(rid, call.call_id, sup, ev.phone, owner.staff_id, mode))
        out.append(K.ControlAnswer(rid, True))

    def _controls_agent_changed(self, ev: AgentChanged, out: list[Command]) -> None:
        """A transfer's target reserved: the call is moved into its room (refused: the call stays). A consulted or
        conferenced agent the database refused to reserve: the rooms are unlinked again."""
        if ev.event == "reserve" and ev.reason == "transfer":
            cid = next((c for c, ctl in self.controls.items() if ctl.transfer_to == ev.staff_id), None)
            if cid is None:
                return
            if ev.applied and ev.state == AgentState.RESERVED:
                out.append(Connect(cid, ev.staff_id))
            else:
                self.controls[cid].transfer_to = None
                agent = self.agents.get(ev.staff_id)
                if agent is not None and agent.call_id == cid:
                    agent.call_id = None
            return
        if ev.applied and ev.reason in ("consult", "conference") and ev.event == (
                "reserve" if ev.reason == "consult" else "connect"):
            for cid, ctl in self.controls.items():  # the partner is in the database: its room is linked now
                if ctl.link_request is None or ev.staff_id != (ctl.consult if ev.reason == "consult"
                                                               else ctl.conference):
                    continue
                call = self.calls.get(cid) or self.inbound.get(cid)
                if call is not None and call.agent_id is not None:
                    out.append(K.LinkRooms(ctl.link_request, cid, call.agent_id, ev.staff_id))
                ctl.link_request = None
                break
        if ev.applied or ev.reason not in ("consult", "conference"):
            if ev.applied and ev.reason == "conference" and ev.contact_id is not None:
                inbound = next((c for c in self.inbound.values()
                                if self.controls.get(c.call_id, CallControls()).conference == ev.staff_id), None)
                if inbound is not None:
                    out.append(Publish(ContactOpened(ev.staff_id, ev.contact_id, inbound.client_id,
                                                     ivr_session_id=inbound.ivr_session_id)))
            return
        for call_id, ctl in self.controls.items():
            if ev.staff_id not in (ctl.consult, ctl.conference):
                continue
            call = self.calls.get(call_id) or self.inbound.get(call_id)
            if call is None or call.agent_id is None:
                continue
            ctl.consult = ctl.conference = None
            if ctl.link_request is None:  # else the rooms were never linked
                out.append(K.UnlinkRooms(0, call_id, call.agent_id, ev.staff_id))
            ctl.link_request = None
            agent = self.agents.get(ev.staff_id)
            if agent is not None and agent.call_id == call_id:
                agent.call_id = None
            if ctl.held and ev.reason == "consult":
                ctl.held = False
                out.append(K.UnholdCall(0, call_id, call.agent_id))
            return

    def _transfer_arrived(self, event: Connected, out: list[Command]) -> bool:
        """``Connected`` of a call being transferred: it is in the target's room now. The agent who had it goes to
        wrap-up, the target to talking with the call's desk contact. False: not a transfer of ours."""
        ctl = self.controls.get(event.call_id)
        call = self.calls.get(event.call_id) or self.inbound.get(event.call_id)
        if ctl is None or ctl.transfer_to is None or call is None or call.state != "connected":
            return False
        target = self.agents.get(ctl.transfer_to)
        owner = self.agents.get(call.agent_id) if call.agent_id is not None else None
        ctl.transfer_to = None
        if owner is not None:
            self._hand_over(call, ctl, owner, "transferred", out)
        ctl.held = False
        if target is None:  # its session ended meanwhile: the call is with nobody; it ends on the PBX
            call.agent_id = None
            return True
        call.agent_id, target.call_id = target.staff_id, call.call_id
        records: tuple[Record, ...] = ((RecordConnected(call.attempt_id, target.staff_id),) if isinstance(call, Call)
                                       else (HandoffStep(call.ivr_session_id, "agent_connected", target.staff_id),))
        if not self._change(target, "connect", out, reason="transfer", attempt_id=self._attempt_of(call),
                            records=records, contact=self._contact_for(call)):
            pass  # the records are written all the same
        return True

    def _transfer_failed(self, ev: ConnectFailed, out: list[Command]) -> bool:
        """The PBX could not move a call being transferred: it stays with its agent, the target is released."""
        ctl = self.controls.get(ev.call_id)
        if ctl is None or ctl.transfer_to is None:
            return False
        target = self.agents.get(ctl.transfer_to)
        ctl.transfer_to = None
        if target is not None and target.call_id == ev.call_id:
            if target.state == AgentState.RESERVED:
                self._change(target, "release", out, reason="transfer_failed")
            target.call_id = None
        return True

    def _control_failed(self, ev: ControlFailed, out: list[Command]) -> None:
        """The PBX refused a control: the core's view goes back to what the PBX has."""
        ctl = self.controls.get(ev.call_id)
        call = self.calls.get(ev.call_id) or self.inbound.get(ev.call_id)
        if ctl is None or call is None:
            return
        if ev.kind == "hold":
            ctl.held = False
        elif ev.kind == "mute":
            ctl.muted = False
        elif ev.kind == "link":
            if ctl.consult is not None:
                partner = self.agents.get(ctl.consult)
                ctl.consult = None
                if partner is not None and partner.state == AgentState.RESERVED:
                    self._change(partner, "release", out, reason="consult_failed")
                    partner.call_id = None
                if ctl.held and call.agent_id is not None:
                    ctl.held = False
                    out.append(K.UnholdCall(0, ev.call_id, call.agent_id))
            elif ctl.conference is not None:
                self._end_conference(call, ctl, out)
        elif ev.kind == "monitor":
            for sup in [s for s, _ in ctl.monitors.items() if self.monitoring.get(s) == ev.call_id]:
                if f"sup{sup}" == ev.text or not ev.text:
                    ctl.monitors.pop(sup, None)
                    self.monitoring.pop(sup, None)
        elif ev.kind == "to_ivr":  # the agent has let the call go: nobody can take it back, it ends here
            out.append(Hangup(ev.call_id))

    def _controls_ended(self, call_id: str, out: list[Command]) -> None:
        """The call is over: its controls end with it (a conference's or consultation's second agent to wrap-up
        or ready, the agent unmuted, monitors hung up)."""
        ctl = self.controls.pop(call_id, None)
        if ctl is None:
            return
        call = self.calls.get(call_id) or self.inbound.get(call_id)
        owner = self.agents.get(call.agent_id) if call is not None and call.agent_id is not None else None
        if ctl.muted and owner is not None:
            out.append(K.MuteAgent(0, call_id, owner.staff_id, False))
        for other in (ctl.consult, ctl.conference, ctl.transfer_to):
            partner = self.agents.get(other) if other is not None else None
            if other is not None and owner is not None and other != ctl.transfer_to and ctl.link_request is None:
                out.append(K.UnlinkRooms(0, call_id, owner.staff_id, other))
            if partner is None or partner.call_id != call_id:
                continue
            if partner.state == AgentState.TALKING:
                self._change(partner, "hangup", out, reason="conference_end", attempt_id=call.attempt_id
                             if isinstance(call, Call) else None)
            elif partner.state == AgentState.RESERVED:
                self._change(partner, "release", out, reason="consult_end")
            partner.call_id = None
        for sup in ctl.monitors:
            if self.monitoring.get(sup) == call_id:
                del self.monitoring[sup]
            out.append(K.StopMonitor(0, call_id, sup))
