"""Pure mapping from AMI messages to domain call events: one small state machine per call.

No I/O and no panoramisk objects: messages are plain mappings of header -> value (header names
in any case; a repeated header may be a list), ``now`` is passed in.  ``CallTracker`` is fed every
message of ONE Asterisk server and returns the domain events it implies.

Keys: our attempt id is the ``ChannelId`` given to Originate, so it comes back as the
``Uniqueid`` of our leg.  With Local channels Asterisk names the other half ``<id>;2`` (or what
``OtherChannelId`` said; ``<id>-2`` is recognised too); its hang-up cause is kept as a hint.

Rules:
- ``OriginateResponse`` Reason 4 -> answered; 0 failed, 1 hung up while ringing, 3 no answer,
  5 busy, 8 congestion -> ``Failed``.
- With AMD the ``UserEvent: CallAnswered`` (AMDStatus/AMDCause) reports the answer instead.
- ``BridgeEnter`` into / ``ConfbridgeJoin`` of an ``agent-<id>`` room -> ``Connected``.
- ``Hangup`` of our leg after the answer -> ``Ended``.  A hang-up before any OriginateResponse is
  held for ``settle_grace_s`` (Asterisk often sends it first), then settled by its cause on
  ``tick`` -- that is how a lost OriginateResponse is settled by our ChannelId.
- Inbound calls (IVR hand-offs): ``UserEvent: HandoffWaiting`` (CallID ``cc-h…``, raised and repeated by the
  shipped ``[cc-handoff-wait]`` while the caller waits there) -> the channel is tracked as an answered call of
  that id, known by its own ``Uniqueid`` (Asterisk's), and reported once as ``Answered`` (parked: ``connect``
  can Redirect it); its ``ConfbridgeJoin`` of an agent room -> ``Connected``, its ``Hangup`` -> ``Ended``, like
  an outbound call.
- A notification call handed to the core (``reassign``: its client pressed 0) goes on under the hand-off's id:
  its channel keeps its Uniqueid (our old id), nothing more is reported under the old id, and the
  ``HandoffWaiting`` of the new id (once the channel waits in ``[cc-handoff-wait]``) reports it ``Answered``.
- ``Shutdown`` -> ``ServerDown`` and every live call on the server ends.
- After a lost connection every live call is "unverified" until ``reconcile`` is given the
  ``CoreShowChannels`` list: the missing ones end, so nothing stays in flight forever.
- A call that had not been answered and ends because the server went away (Shutdown, or gone after a
  reconnect) with no hang-up cause seen fails with reason ``lost``: nobody knows how it would have ended.
- Every event carries the tracker's ``server`` (Answered, Connected, AgentJoined, AgentLeft): the dialler
  routes a call only to an agent whose room is on the same server.
- ``AgentJoined`` is the agent leg's ``ConfbridgeJoin`` into its own room, never the Originate being queued;
  its hang-up (or a failed login: the leg hangs up unanswered) is ``AgentLeft``.
- ``recover`` (after the engine restarted): the calls with our attempt ids and the agent legs in their rooms
  that a ``CoreShowChannels`` list shows and this tracker does not know are tracked from now on (a
  ``Recovered`` event lists the calls); agent legs up outside their room are returned to be hung up.
- Every call gets exactly one terminal event; duplicated, late or reordered messages for a
  settled call, and messages about channels that are not ours, change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    AmdVerdict,
    Connected,
    DigitPressed,
    Ended,
    Failed,
    FailReason,
    LiveCall,
    PhoneContact,
    Recovered,
    Ringing,
    ServerDown,
    ServerUp,
    TelephonyEvent,
)
from callcenter.ports.channel_variables import (
    AGENT_ROOM_PREFIX,
    USEREVENT_CALL_ANSWERED,
    USEREVENT_HANDOFF_WAITING,
    USEREVENT_NOTIFY_DIGIT,
    agent_leg_id,
    agent_of_leg_id,
    handoff_session_id,
    is_attempt_call_id,
)

ORIGINATE_REASONS: dict[int, FailReason | None] = {
    0: "error",
    1: "no_answer",  # hung up while ringing
    3: "no_answer",
    4: None,  # answered
    5: "busy",
    8: "congestion",
}

# Q.850 hang-up causes that tell why a call never got answered.
CAUSE_REASONS: dict[int, FailReason] = {
    1: "invalid",  # unallocated number
    3: "invalid",  # no route to destination
    17: "busy",
    18: "no_answer",  # no user responding
    19: "no_answer",  # no answer
    20: "invalid",  # subscriber absent
    21: "error",  # call rejected
    22: "invalid",  # number changed
    27: "congestion",  # destination out of order
    28: "invalid",  # invalid number format
    34: "congestion",
    38: "congestion",  # network out of order
    41: "congestion",
    42: "congestion",
}

AMD_STATUS: dict[str, AmdVerdict] = {"HUMAN": "human", "MACHINE": "machine", "NOTSURE": "notsure"}


def headers(message: Mapping[str, Any]) -> dict[str, str]:
    """Lower-case header names; a repeated header keeps its first value; non-text values dropped.

    panoramisk's messages (a ``CaseInsensitiveDict``) keep ``{lower-case name: (name, value)}`` in ``_store``:
    that dict is read directly, once, instead of through the ``Mapping`` ABC (whose ``items()`` lower-cases and
    looks up every name again); any other mapping is read through ``items()``."""
    store = getattr(message, "_store", None)
    if type(store) is dict:
        out: dict[str, str] = {}
        for lower, pair in store.items():
            value = pair[1] if type(pair) is tuple and len(pair) == 2 else None
            if type(value) is not str:
                if isinstance(value, list):
                    value = value[0] if value and isinstance(value[0], str) else None
                if not isinstance(value, str) or not isinstance(lower, str):
                    continue
            out[lower] = value
        return out
    out = {}
    for key, value in message.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, list):
            value = value[0] if value and isinstance(value[0], str) else None
        if isinstance(value, str):
            out.setdefault(key.lower(), value)
    return out


def parse_cause(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 3 else None


def fail_reason_for_cause(cause: int | None) -> FailReason:
    return CAUSE_REASONS.get(cause, "error") if cause else "error"


@dataclass
class _Call:
    call_id: str
    dialled_at: float
    timeout_s: float
    expect_amd: bool
    action_id: str | None = None
    state: str = "dialing"  # dialing -> answered -> (terminal: removed)
    channel: str | None = None  # our leg's channel name (Redirect / Hangup target)
    rang: bool = False
    answer_reported: bool = False
    agent_id: str | None = None
    connected_at: float | None = None
    own_hangup: tuple[int | None, str, float] | None = None  # cause, text, at
    failed_unexplained: float | None = None  # when an OriginateResponse said Reason 0 with no hang-up cause yet
    other_keys: tuple[str, ...] = ()
    other_cause: int | None = None
    unverified: bool = False
    uniqueid: str | None = None  # an inbound channel's own (Asterisk's) id; None: our call id is the Uniqueid


@dataclass
class _Agent:
    agent_id: str
    leg_ids: frozenset[str]
    channel: str | None = None
    joined: bool = False
    unverified: bool = False


@dataclass
class CallTracker:
    """State of our calls on one Asterisk server. Feed it messages; it returns domain events."""

    server: str
    settle_grace_s: float = 5.0
    up: bool = False
    _calls: dict[str, _Call] = field(default_factory=dict)
    _others: dict[str, str] = field(default_factory=dict)  # other-half uniqueid -> call id
    _by_action: dict[str, str] = field(default_factory=dict)
    _agents: dict[str, _Agent] = field(default_factory=dict)
    _agent_legs: dict[str, str] = field(default_factory=dict)  # leg uniqueid -> agent id
    _rooms: dict[str, str] = field(default_factory=dict)  # BridgeUniqueid -> agent id
    _settled: dict[str, None] = field(default_factory=dict)  # recent terminal ids (ordered, bounded)
    _inbound: dict[str, str] = field(default_factory=dict)  # an inbound channel's Uniqueid -> our call id

    # --- commands from the adapter ---------------------------------------------------------

    def track(
        self,
        call_id: str,
        now: float,
        timeout_s: float,
        *,
        expect_amd: bool = False,
        action_id: str | None = None,
        other_ids: Iterable[str] = (),
    ) -> None:
        """Register an attempt BEFORE its Originate is written (events may come before the reply)."""
        others = (f"{call_id};2", f"{call_id}-2", *other_ids)
        self._calls[call_id] = _Call(call_id, now, timeout_s, expect_amd, action_id, other_keys=others)
        for other in others:
            self._others[other] = call_id
        if action_id:
            self._by_action[action_id] = call_id
        self._settled.pop(call_id, None)

    def forget(self, call_id: str) -> None:
        """The Originate was refused at once: no channel exists, no terminal event is due."""
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._drop_keys(call)

    def left_for_ivr(self, call_id: str, now: float) -> list[TelephonyEvent]:
        """The engine Redirected the call out of the agent's room into the hotline IVR: it ends for us now
        (``Ended``, cause text "to_ivr"); its channel's later events are no longer ours."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        return self._end(call, 16, "to_ivr", now)

    def reassign(self, call_id: str, new_call_id: str) -> bool:
        """The answered call ``call_id`` goes on as ``new_call_id`` (a hand-off id): same channel, known by its
        Uniqueid; reported ``Answered`` again when the dialplan's ``HandoffWaiting`` names it. False when
        ``call_id`` is not an answered call here."""
        call = self._calls.get(call_id)
        if call is None or call.state != "answered" or new_call_id in self._calls:
            return False
        del self._calls[call_id]
        self._settled[call_id] = None  # late messages under the old id (a key, a repeat) change nothing
        if call.action_id:
            self._by_action.pop(call.action_id, None)
            call.action_id = None
        uid = call.uniqueid or call_id
        call.call_id, call.uniqueid, call.answer_reported = new_call_id, uid, False
        self._inbound[uid] = new_call_id
        for key in call.other_keys:
            if self._others.get(key) == call_id:
                self._others[key] = new_call_id
        self._calls[new_call_id] = call
        self._settled.pop(new_call_id, None)
        return True

    def track_agent(self, agent_id: str, other_ids: Iterable[str] = ()) -> str:
        leg = agent_leg_id(agent_id)
        ids = frozenset({leg, f"{leg};2", f"{leg}2", *other_ids})
        self._agents[agent_id] = _Agent(agent_id, ids)
        for uid in ids:
            self._agent_legs[uid] = agent_id
        return leg

    def forget_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is not None:
            for uid in agent.leg_ids:
                self._agent_legs.pop(uid, None)

    def channel_of(self, call_id: str) -> str | None:
        call = self._calls.get(call_id)
        return call.channel if call else None

    def has_agent(self, agent_id: str) -> bool:
        """Whether an agent leg of ``agent_id`` is tracked on this server (dialled or in its room)."""
        return agent_id in self._agents

    def agent_joined(self, agent_id: str) -> bool:
        agent = self._agents.get(agent_id)
        return agent is not None and agent.joined

    def agent_channel(self, agent_id: str) -> str | None:
        agent = self._agents.get(agent_id)
        return agent.channel if agent else None

    def is_live(self, call_id: str) -> bool:
        return call_id in self._calls

    def was_settled(self, call_id: str) -> bool:
        return call_id in self._settled

    def in_flight(self) -> set[str]:
        return set(self._calls)

    def answered(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and call.state == "answered"

    # --- connection life -------------------------------------------------------------------

    def connected(self, now: float) -> list[TelephonyEvent]:
        if self.up:
            return []
        self.up = True
        return [ServerUp(self.server, now)]

    def connection_lost(self, now: float, reason: str = "connection lost") -> list[TelephonyEvent]:
        """The socket dropped: calls may live on, but we no longer know. Reconcile after reconnect."""
        for call in self._calls.values():
            call.unverified = True
        for agent in self._agents.values():
            agent.unverified = True
        if not self.up:
            return []
        self.up = False
        return [ServerDown(self.server, now, reason)]

    def needs_reconcile(self) -> bool:
        return any(c.unverified for c in self._calls.values()) or any(
            a.unverified for a in self._agents.values()
        )

    def mark_unverified(self, call_ids: Iterable[str]) -> None:
        for call_id in call_ids:
            if call_id in self._calls:
                self._calls[call_id].unverified = True

    def overdue(self, now: float, grace_s: float = 30.0) -> list[str]:
        """Calls still dialling long after their originate timeout: candidates for a reconcile."""
        return [
            c.call_id
            for c in self._calls.values()
            if c.state == "dialing" and now > c.dialled_at + c.timeout_s + grace_s
        ]

    def reconcile(self, channels: Iterable[Mapping[str, Any]], now: float) -> list[TelephonyEvent]:
        """Settle unverified calls and agents from a ``CoreShowChannels`` list (its CoreShowChannel events)."""
        alive: dict[str, str] = {}
        for msg in channels:
            h = headers(msg)
            uid = h.get("uniqueid")
            if uid:
                alive[uid] = h.get("channel", "")
        out: list[TelephonyEvent] = []
        for call in list(self._calls.values()):
            if not call.unverified:
                continue
            call.unverified = False
            key = call.uniqueid or call.call_id
            if key in alive:
                call.channel = alive[key] or call.channel
                continue
            if call.state == "answered":
                out += self._end(call, None, "gone after reconnect", now)
            else:
                out += self._fail_by_cause(call, now, unknown="lost")
        for agent in list(self._agents.values()):
            if not agent.unverified:
                continue
            agent.unverified = False
            if not (agent.leg_ids & alive.keys()):
                out += self._agent_left(agent, None, now)
        return out

    def recover(self, channels: Iterable[Mapping[str, Any]], now: float) -> tuple[list[TelephonyEvent], list[str]]:
        """Take over what a ``CoreShowChannels`` list shows of ours that this tracker does not know (a previous
        engine process placed it): attempt legs (``cc-<digits>``) are tracked from now on and reported in one
        ``Recovered``; agent legs sitting in their ``agent-<id>`` room are tracked as joined (``AgentJoined``).
        Returns the events and the channels to hang up: agent legs that are up but not in their room (a
        half-made login of the dead process, which would collide with the next login's ChannelId)."""
        out: list[TelephonyEvent] = []
        found: list[LiveCall] = []
        orphans: list[str] = []
        for msg in channels:
            h = headers(msg)
            uid, channel = h.get("uniqueid", ""), h.get("channel", "")
            app, data = h.get("application", "").lower(), h.get("applicationdata", "")
            room = data.split(",", 1)[0] if app == "confbridge" else ""
            room_agent = room[len(AGENT_ROOM_PREFIX):] if room.startswith(AGENT_ROOM_PREFIX) else None
            if is_attempt_call_id(uid):
                if uid in self._calls or uid in self._others or uid in self._settled:
                    continue
                self.track(uid, now, 300.0)
                call = self._calls[uid]
                call.channel = channel or None
                call.rang = True
                if h.get("channelstate") == "6":  # Up: answered (the engine recorded how)
                    call.state = "answered"
                    call.answer_reported = True
                    call.agent_id = room_agent
                found.append(LiveCall(uid, call.state == "answered", room_agent))
                continue
            agent_id = agent_of_leg_id(uid)
            if agent_id is None or uid in self._agent_legs:
                continue
            if room_agent == agent_id:
                self.track_agent(agent_id)
                agent = self._agents[agent_id]
                agent.channel, agent.joined = channel or None, True
                out.append(AgentJoined(agent_id, now, server=self.server))
            elif channel:
                orphans.append(channel)
        if found:
            out.insert(0, Recovered(self.server, now, tuple(found)))
        return out, orphans

    def tick(self, now: float) -> list[TelephonyEvent]:
        """Settle attempts whose leg hung up before any OriginateResponse (lost or late reply), and those whose
        unexplained failure (Reason 0) was never followed by a hang-up cause."""
        out: list[TelephonyEvent] = []
        for call in list(self._calls.values()):
            if call.state != "dialing":
                continue
            since = call.own_hangup[2] if call.own_hangup is not None else call.failed_unexplained
            if since is not None and now - since >= self.settle_grace_s:
                out += self._fail_by_cause(call, now)
        return out

    # --- messages ----------------------------------------------------------------------------

    def feed(self, message: Mapping[str, Any], now: float) -> list[TelephonyEvent]:
        h = headers(message)
        name = h.get("event")
        if not name:
            return []
        handler = _HANDLERS.get(name.lower())
        if handler is None:
            return []
        return handler(self, h, now)

    def _on_contact_status(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        """A SIP phone registered, stopped answering its qualify, or left (read privilege "system")."""
        endpoint, status = h.get("endpointname", ""), h.get("contactstatus", "")
        return [PhoneContact(endpoint, status, now, self.server)] if endpoint and status else []

    def _own(self, h: Mapping[str, str], key: str = "uniqueid") -> _Call | None:
        uid = h.get(key)
        return self._calls.get(uid) if uid else None

    def _on_newchannel(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        call = self._own(h)
        if call is not None and h.get("channel"):
            call.channel = h["channel"]
        agent_id = self._agent_legs.get(h.get("uniqueid", ""))
        if agent_id is not None and h.get("uniqueid") == agent_leg_id(agent_id):
            self._agents[agent_id].channel = h.get("channel") or None
        return []

    def _on_newstate(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        call = self._own(h)
        if call is None:
            return []
        if h.get("channel"):
            call.channel = h["channel"]
        if h.get("channelstate") == "5":
            return self._ringing(call, now)
        return []

    def _on_dialstate(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        call = self._own(h, "destuniqueid")
        if call is not None and h.get("dialstatus", "").upper() == "RINGING":
            return self._ringing(call, now)
        return []

    def _ringing(self, call: _Call, now: float) -> list[TelephonyEvent]:
        if call.state != "dialing" or call.rang:
            return []
        call.rang = True
        return [Ringing(call.call_id, now)]

    def _on_originate_response(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        call = self._own(h)
        if call is None and h.get("actionid") in self._by_action:
            call = self._calls.get(self._by_action[h["actionid"]])
        if call is None or call.state != "dialing":
            return []  # duplicate, late, or not ours
        reason_code = parse_cause(h.get("reason"))
        if reason_code == 4 and h.get("response", "").lower() == "success":
            channel = h.get("channel")
            if channel and (call.channel is None or ";" in channel):
                call.channel = channel
            return self._answered(call, now, None, None, report=not call.expect_amd)
        reason = ORIGINATE_REASONS.get(reason_code) if reason_code is not None else None
        if reason is None or reason == "error":
            if self._known_cause(call) is None and call.channel is not None and call.failed_unexplained is None:
                # Asterisk 22 over PJSIP reports a 486 or a 503 as Reason 0 and may send the response before the
                # leg's Hangup that carries the cause (17, 34): our leg exists, so its Hangup is due; wait for it
                # (``tick`` settles without one). No leg (Asterisk refused the Originate): an error at once.
                call.failed_unexplained = now
                return []
            return self._fail_by_cause(call, now)
        return self._fail(call, reason, self._known_cause(call), now)

    def _on_userevent(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        if h.get("userevent", "").lower() == USEREVENT_HANDOFF_WAITING.lower():
            return self._handoff_waiting(h, now)
        if h.get("userevent", "").lower() == USEREVENT_NOTIFY_DIGIT.lower():
            known = self._own(h) or self._calls.get(h.get("callid", "").strip())
            digit = h.get("digit", "").strip()
            if known is None or len(digit) != 1 or digit not in "0123456789*#":
                return []
            return [DigitPressed(known.call_id, now, digit)]
        if h.get("userevent", "").lower() != USEREVENT_CALL_ANSWERED.lower():
            return []
        call = self._own(h) or self._calls.get(h.get("callid", ""))
        if call is None or call.answer_reported:
            return []
        status = h.get("amdstatus", "").strip().upper()
        amd = AMD_STATUS.get(status)
        cause = h.get("amdcause") or None
        if h.get("channel") and call.channel is None:
            call.channel = h["channel"]
        return self._answered(call, now, amd, cause, report=True)

    def _handoff_waiting(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        call_id, uid, channel = h.get("callid", "").strip(), h.get("uniqueid", ""), h.get("channel", "")
        if handoff_session_id(call_id) is None or not uid or not channel:
            return []  # not a hand-off id of ours (or no channel to move)
        call = self._calls.get(call_id)
        if call is not None:  # the dialplan's repeat: the channel may have been renamed (masquerade)
            call.channel = channel
            if call.uniqueid != uid:
                self._inbound.pop(call.uniqueid or "", None)
                call.uniqueid = uid
                self._inbound[uid] = call_id
            return self._answered(call, now, None, None, report=True)  # a reassigned call: parked now
        call = _Call(call_id, now, 0.0, False, channel=channel, uniqueid=uid)
        self._calls[call_id] = call
        self._inbound[uid] = call_id
        self._settled.pop(call_id, None)
        return self._answered(call, now, None, None, report=True)

    def _answered(
        self, call: _Call, now: float, amd: AmdVerdict | None, amd_cause: str | None, *, report: bool
    ) -> list[TelephonyEvent]:
        call.state = "answered"
        if not report or call.answer_reported:
            return []
        call.answer_reported = True
        return [Answered(call.call_id, now, amd, amd_cause, server=self.server)]

    def _on_confbridge_start(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        conference = h.get("conference", "")
        if conference.startswith(AGENT_ROOM_PREFIX) and h.get("bridgeuniqueid"):
            self._rooms[h["bridgeuniqueid"]] = conference[len(AGENT_ROOM_PREFIX) :]
        return []

    def _on_confbridge_end(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        self._rooms.pop(h.get("bridgeuniqueid", ""), None)
        return []

    def _on_confbridge_join(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        conference = h.get("conference", "")
        if not conference.startswith(AGENT_ROOM_PREFIX):
            return []
        agent_id = conference[len(AGENT_ROOM_PREFIX) :]
        if h.get("bridgeuniqueid"):
            self._rooms[h["bridgeuniqueid"]] = agent_id
        return self._joined(h.get("uniqueid", ""), agent_id, now)

    def _on_bridge_enter(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        agent_id = self._rooms.get(h.get("bridgeuniqueid", ""))
        if agent_id is None:
            return []
        return self._joined(h.get("uniqueid", ""), agent_id, now)

    def _joined(self, uid: str, agent_id: str, now: float) -> list[TelephonyEvent]:
        out: list[TelephonyEvent] = []
        call = self._calls.get(self._inbound.get(uid, uid))
        if call is not None:
            if call.agent_id == agent_id:
                return []
            if not call.answer_reported:  # the answer report was lost or is late
                out += self._answered(call, now, None, None, report=True)
            call.state = "answered"
            call.agent_id = agent_id
            if call.connected_at is None:
                call.connected_at = now
            out.append(Connected(call.call_id, now, agent_id, server=self.server))
            return out
        leg_agent = self._agent_legs.get(uid)
        if leg_agent is not None and leg_agent == agent_id:
            agent = self._agents[agent_id]
            if not agent.joined:
                agent.joined = True
                out.append(AgentJoined(agent_id, now, server=self.server))
        return out

    def _on_hangup(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        uid = h.get("uniqueid", "")
        cause = parse_cause(h.get("cause"))
        text = h.get("cause-txt", "")
        call = self._calls.get(self._inbound.get(uid, uid))
        if call is not None:
            if call.state == "answered":
                return self._end(call, cause, text, now)
            if call.own_hangup is None:
                call.own_hangup = (cause, text, now)
            if call.failed_unexplained is not None:
                return self._fail_by_cause(call, now)
            return []
        other = self._others.get(uid)
        if other is not None and other in self._calls:
            if cause:
                self._calls[other].other_cause = cause
            return []
        agent_id = self._agent_legs.get(uid)
        if agent_id is not None:
            return self._agent_left(self._agents[agent_id], cause, now)
        return []

    def _on_shutdown(self, h: dict[str, str], now: float) -> list[TelephonyEvent]:
        return self.shutdown(now, "restart" if h.get("restart", "").lower() == "true" else "shutdown")

    def shutdown(self, now: float, reason: str = "shutdown") -> list[TelephonyEvent]:
        """Asterisk is going away: every channel on it dies."""
        out: list[TelephonyEvent] = []
        if self.up:
            self.up = False
            out.append(ServerDown(self.server, now, reason))
        for call in list(self._calls.values()):
            if call.state == "answered":
                out += self._end(call, None, f"server {reason}", now)
            else:
                out += self._fail_by_cause(call, now, unknown="lost")
        for agent in list(self._agents.values()):
            out += self._agent_left(agent, None, now)
        return out

    # --- terminal transitions --------------------------------------------------------------

    def _known_cause(self, call: _Call) -> int | None:
        own = call.own_hangup[0] if call.own_hangup else None
        return own or call.other_cause or None

    def _fail_by_cause(self, call: _Call, now: float, unknown: FailReason = "error") -> list[TelephonyEvent]:
        """By the hang-up cause seen; without one, ``unknown`` ("lost" when the server went away)."""
        cause = self._known_cause(call)
        return self._fail(call, fail_reason_for_cause(cause) if cause else unknown, cause, now)

    def _fail(self, call: _Call, reason: FailReason, cause: int | None, now: float) -> list[TelephonyEvent]:
        self._settle(call)
        return [Failed(call.call_id, now, reason, cause)]

    def _end(self, call: _Call, cause: int | None, text: str, now: float) -> list[TelephonyEvent]:
        out: list[TelephonyEvent] = []
        if not call.answer_reported:  # AMD never reported before the hang-up
            out += self._answered(call, now, None, None, report=True)
        self._settle(call)
        talk = now - call.connected_at if call.connected_at is not None else None
        out.append(Ended(call.call_id, now, cause, text or "", talk))
        return out

    def _agent_left(self, agent: _Agent, cause: int | None, now: float) -> list[TelephonyEvent]:
        if agent.agent_id not in self._agents:
            return []
        self.forget_agent(agent.agent_id)
        return [AgentLeft(agent.agent_id, now, cause, server=self.server)]

    def _settle(self, call: _Call) -> None:
        self._calls.pop(call.call_id, None)
        self._drop_keys(call)
        self._settled[call.call_id] = None
        while len(self._settled) > 10_000:
            self._settled.pop(next(iter(self._settled)))

    def _drop_keys(self, call: _Call) -> None:
        if call.uniqueid is not None and self._inbound.get(call.uniqueid) == call.call_id:
            del self._inbound[call.uniqueid]
        for key in call.other_keys:
            if self._others.get(key) == call.call_id:
                del self._others[key]
        if call.action_id:
            self._by_action.pop(call.action_id, None)


_HANDLERS = {
    "newchannel": CallTracker._on_newchannel,
    "newstate": CallTracker._on_newstate,
    "dialstate": CallTracker._on_dialstate,
    "originateresponse": CallTracker._on_originate_response,
    "userevent": CallTracker._on_userevent,
    "confbridgestart": CallTracker._on_confbridge_start,
    "confbridgeend": CallTracker._on_confbridge_end,
    "confbridgejoin": CallTracker._on_confbridge_join,
    "bridgeenter": CallTracker._on_bridge_enter,
    "hangup": CallTracker._on_hangup,
    "shutdown": CallTracker._on_shutdown,
    "contactstatus": CallTracker._on_contact_status,
}
