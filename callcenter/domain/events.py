"""The live events: one frozen dataclass per event type, the only shapes that travel on the event bus.

Every event names the topics it goes to (``topics()``): ``agent:<staff id>`` (one agent's screens),
``wallboard`` (supervisors), ``calls`` (call life-cycle, read by the dialler and reports). An event is turned
into a JSON-safe payload by ``to_payload`` (``{"type": <type>, ...fields}``) and back by ``from_payload``, so
it can cross processes (PostgreSQL NOTIFY) unchanged; ``from_payload`` refuses an unknown type or a missing
field with ``EventError``.

Live events tell screens that something happened; they never carry a command (a hang-up, a hand-off) and
are never the only record of a fact: what they announce is in the database already when they are published.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

WALLBOARD = "wallboard"
CALLS = "calls"


def agent_topic(staff_id: int) -> str:
    return f"agent:{staff_id}"


class EventError(ValueError):
    """A payload that is not one of the events below."""


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = ""

    def topics(self) -> tuple[str, ...]:
        raise NotImplementedError

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}


# --- one agent's screens (and the wall board) ----------------------------------------------------------------


@dataclass(frozen=True)
class AgentStateChanged(Event):
    """An agent's state changed (the dialler, the desk, an IVR hand-off): the agent's screens and the board."""

    type: ClassVar[str] = "agent_state"
    staff_id: int
    state: str
    reason: str = ""
    since: str | None = None  # ISO time of the change
    attempt_id: int | None = None

    def topics(self) -> tuple[str, ...]:
        return (agent_topic(self.staff_id), WALLBOARD)


@dataclass(frozen=True)
class ContactOpened(Event):
    """A call reached the agent and its desk contact exists (outbound, callback, preview or IVR hand-off)."""

    type: ClassVar[str] = "contact_opened"
    staff_id: int
    contact_id: int
    client_id: int | None = None
    attempt_id: int | None = None
    campaign_id: int | None = None
    ivr_session_id: int | None = None

    def topics(self) -> tuple[str, ...]:
        return (agent_topic(self.staff_id), WALLBOARD)


@dataclass(frozen=True)
class PreviewOffered(Event):
    """Preview mode: a lead reserved for the agent to dial or skip (the screen masks the number)."""

    type: ClassVar[str] = "preview"
    staff_id: int
    lead_id: int
    campaign_id: int
    client_id: int | None
    name: str
    phone: str
    attempt_no: int

    def topics(self) -> tuple[str, ...]:
        return (agent_topic(self.staff_id),)


@dataclass(frozen=True)
class CallbackPlaced(Event):
    """A due callback is being dialled with this agent reserved for it."""

    type: ClassVar[str] = "callback"
    staff_id: int
    callback_id: int
    lead_id: int
    attempt_id: int
    campaign_id: int

    def topics(self) -> tuple[str, ...]:
        return (agent_topic(self.staff_id),)


@dataclass(frozen=True)
class BenchPing(Event):
    """The push benchmark's probe (``callcenter bench push``)."""

    type: ClassVar[str] = "bench"
    staff_id: int
    i: int
    t0: float

    def topics(self) -> tuple[str, ...]:
        return (agent_topic(self.staff_id),)


# --- the wall board ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialerBoard(Event):
    """One dialler process's figures for one campaign (sent when they change)."""

    type: ClassVar[str] = "dialer"
    dialer_id: str
    campaign_id: int
    state: str
    mode: str
    in_flight: int
    waiting: int
    agents: dict[str, int]
    attempts: int
    humans: int
    connected: int
    abandoned: int
    abandon_rate: float

    def topics(self) -> tuple[str, ...]:
        return (WALLBOARD,)


@dataclass(frozen=True)
class CampaignChanged(Event):
    """A campaign was created, edited, or moved in its life-cycle (``state`` when it moved)."""

    type: ClassVar[str] = "campaign"
    campaign_id: int
    state: str | None = None

    def topics(self) -> tuple[str, ...]:
        return (WALLBOARD,)


@dataclass(frozen=True)
class HandoffWaiting(Event):
    """A hotline caller asked for an agent; the hand-off waits in the database until an agent takes it."""

    type: ClassVar[str] = "ivr_handoff"
    ivr_session_id: int

    def topics(self) -> tuple[str, ...]:
        return (WALLBOARD,)


@dataclass(frozen=True)
class Disposed(Event):
    """An agent closed a contact with a disposition."""

    type: ClassVar[str] = "disposition"
    staff_id: int
    contact_id: int
    disposition: str

    def topics(self) -> tuple[str, ...]:
        return (WALLBOARD,)


# --- the call life-cycle -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptEnded(Event):
    type: ClassVar[str] = "attempt_ended"
    attempt_id: int
    campaign_id: int
    lead_id: int
    outcome: str
    abandoned: bool

    def topics(self) -> tuple[str, ...]:
        return (CALLS, WALLBOARD)


@dataclass(frozen=True)
class CommandQueued(Event):
    """A call command row (hang-up, ...) waits for the dialler process ``dialer_id``: a nudge, so it claims it
    at once rather than at its next poll. Losing this event delays the command, never loses it."""

    type: ClassVar[str] = "command_queued"
    dialer_id: str
    command_id: int

    def topics(self) -> tuple[str, ...]:
        return (CALLS,)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (AgentStateChanged, ContactOpened, PreviewOffered, CallbackPlaced, BenchPing, DialerBoard,
                CampaignChanged, HandoffWaiting, Disposed, AttemptEnded, CommandQueued)
}


def from_payload(payload: dict[str, Any]) -> Event:
    """The event a payload describes (``seq``/``topic``/``origin`` keys added by the bus are ignored)."""
    cls = EVENT_TYPES.get(str(payload.get("type")))
    if cls is None:
        raise EventError(f"unknown event type {payload.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in payload.items() if k in names})
    except TypeError as exc:
        raise EventError(f"bad {cls.type} event: {exc}") from None
