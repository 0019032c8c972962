"""The call core's vocabulary of live-call controls (issue 13): the inputs, the commands and the per-call control
state. The decisions are ``CallCore._control`` (``services/dialer/core.py``, section "call controls"); the
driver (``engine.py``) carries the commands out through the port's ``CallControls``.

Kinds (``CONTROL_KINDS``; a ``call_commands`` row's ``kind``), who may ask, and what the core does:

    kind              asked by             commands (in order)                     agents
    hold / resume     the agent on it      HoldCall / UnholdCall
    mute / unmute     the agent on it      MuteAgent                               (unmuted again when it ends)
    dtmf              the agent on it      SendDtmf(digits)
    transfer          the agent on it      (target reserved) Connect(call, target) target ready -> reserved;
                                                                                   at Connected: agent ->
                                                                                   wrap_up, target -> talking
                                                                                   (its desk contact); a failed
                                                                                   Connect: target released,
                                                                                   the call stays
    consult           the agent on it      HoldCall; LinkRooms(agent, target)      target ready -> reserved
    consult_complete  the agent on it      UnlinkRooms; Connect(call, target)      as a transfer (the target
                                                                                   is reserved already)
    consult_cancel    the agent on it      UnlinkRooms; UnholdCall                 target reserved -> ready
    conference        the agent on it      LinkRooms(agent, target)                target ready -> reserved ->
                                                                                   talking (its desk contact)
    conference_leave  either agent         UnlinkRooms                             target talking -> wrap_up
    transfer_ivr      the agent on it      ToIvr(call, menu)                       agent -> wrap_up
    listen / whisper  a supervisor         Monitor(supervisor, phone, agent, mode)
    / barge
    monitor_stop      the supervisor       StopMonitor(supervisor)

Every request is answered by one ``ControlAnswer(request_id, ok, reason)`` (reason: a code of
``locales/*/controls.yaml``); a control the PBX refused comes back as ``ControlFailed`` and is undone. When a
call ends, its controls end with it: a conference's second agent goes to wrap-up, a muted agent is unmuted,
monitors are hung up. The target of a transfer, consultation or conference is any agent (or supervisor signed in
at the desk) with a session in this dialler whose phone is up on the call's server and who is ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callcenter.ports.telephony import MonitorMode

ControlKind = Literal["hold", "resume", "mute", "unmute", "dtmf", "transfer", "consult", "consult_complete",
                      "consult_cancel", "conference", "conference_leave", "transfer_ivr", "listen", "whisper",
                      "barge", "monitor_stop"]
CONTROL_KINDS: tuple[str, ...] = ("hold", "resume", "mute", "unmute", "dtmf", "transfer", "consult",
                                  "consult_complete", "consult_cancel", "conference", "conference_leave",
                                  "transfer_ivr", "listen", "whisper", "barge", "monitor_stop")
MONITOR_KINDS: tuple[str, ...] = ("listen", "whisper", "barge", "monitor_stop")
TARGETED_KINDS: tuple[str, ...] = ("transfer", "consult", "conference")


# --- inputs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlRequested:
    """A control of the live call ``call_id`` asked by ``staff_id`` (the agent on it; a supervisor for monitors)."""

    request_id: int
    call_id: str
    staff_id: int
    kind: str
    target: int | None = None  # transfer / consult / conference: the agent to bring in
    digits: str = ""  # dtmf
    menu: str = ""  # transfer_ivr: the IVR node to return to ("" for the flow's start)
    phone: str = ""  # listen / whisper / barge: the supervisor's phone as a dial string


@dataclass(frozen=True)
class ControlFailed:
    """The PBX refused a control command (result of one of the commands below)."""

    request_id: int
    call_id: str
    kind: str
    text: str = ""


# --- commands --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldCall:
    request_id: int
    call_id: str


@dataclass(frozen=True)
class UnholdCall:
    request_id: int
    call_id: str
    staff_id: int  # the room to put the customer back into


@dataclass(frozen=True)
class MuteAgent:
    request_id: int
    call_id: str
    staff_id: int
    muted: bool


@dataclass(frozen=True)
class SendDtmf:
    request_id: int
    call_id: str
    digits: str


@dataclass(frozen=True)
class LinkRooms:
    request_id: int
    call_id: str
    staff_id: int
    other_id: int


@dataclass(frozen=True)
class UnlinkRooms:
    request_id: int
    call_id: str
    staff_id: int
    other_id: int


@dataclass(frozen=True)
class ToIvr:
    request_id: int
    call_id: str
    menu: str


@dataclass(frozen=True)
class Monitor:
    request_id: int
    call_id: str
    supervisor_id: int
    phone: str
    staff_id: int
    mode: MonitorMode


@dataclass(frozen=True)
class StopMonitor:
    request_id: int
    call_id: str
    supervisor_id: int


@dataclass(frozen=True)
class ControlAnswer:
    """The core's answer to a request (the driver records it on the ``call_commands`` row)."""

    request_id: int
    ok: bool
    reason: str = ""


ControlCommand = (HoldCall, UnholdCall, MuteAgent, SendDtmf, LinkRooms, UnlinkRooms, ToIvr, Monitor, StopMonitor)


# --- the core's control state of one call ------------------------------------------------------------------------


@dataclass
class CallControls:
    held: bool = False
    muted: bool = False
    consult: int | None = None  # the agent consulted (rooms linked, customer held)
    conference: int | None = None  # the second agent in a three-way conference (rooms linked)
    transfer_to: int | None = None  # a transfer on its way: the call is this agent's once it reaches their room
    # a consultation's or conference's rooms are linked once the partner's reservation (consult) or connection
    # (conference) is in the database: the request to answer if the PBX then refuses the link
    link_request: int | None = None
    monitors: dict[int, str] = field(default_factory=dict)  # supervisor -> listen / whisper / barge

    def idle(self) -> bool:
        return not (self.held or self.muted or self.consult or self.conference or self.transfer_to or self.monitors)
