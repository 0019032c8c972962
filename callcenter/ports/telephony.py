"""The telephony port: domain call events, the ``Telephony`` protocol, and input checks.

Pure standard library.  Every backend (simulated PBX, Asterisk AMI, Twilio) implements
``Telephony`` and reports what happens to calls as the events below.

Life of one outbound attempt (``call_id`` is OUR attempt id, never the PBX's)::

    originate() -> [Ringing] -> Answered(amd) -> [Connected(agent)] -> Ended(cause, talk_s)
                             \\-> Failed(reason, cause)

Every attempt accepted by ``originate`` ends with exactly ONE terminal event, ``Failed`` or
``Ended``, even when the PBX restarts or the connection drops (the adapters reconcile).
``at`` is the loop/monotonic time in seconds when the backend saw the event.

Events are read with ``events()``: an async iterator over ONE queue per backend (one consumer;
it stops after ``aclose()``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, Union, cast, runtime_checkable


AmdVerdict = Literal["human", "machine", "notsure"]
# "lost": the PBX went away (restart, dropped connection) before the call's fate was known; not the
# customer's doing, so the dialler does not count it against the lead (outcome "lost").
FailReason = Literal["busy", "no_answer", "congestion", "invalid", "error", "lost"]


@dataclass(frozen=True, slots=True)
class Ringing:
    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class Answered:
    call_id: str
    at: float
    amd: AmdVerdict | None = None  # None when no answering-machine detection ran
    amd_cause: str | None = None  # e.g. "LONGGREETING-1500-1500", "TOOLONG-4901"
    server: str = ""  # the PBX server the call is up on ("" when the backend has one server only)
    picked_up_at: float | None = None  # when the called party picked up, if earlier than ``at`` (AMD listened)


@dataclass(frozen=True, slots=True)
class DigitPressed:
    """A key the called party pressed during a menu (``play_menu``: a notification call's message)."""

    call_id: str
    at: float
    digit: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Terminal: the attempt never reached an answered state."""

    call_id: str
    at: float
    reason: FailReason
    cause: int | None = None  # Q.850 cause when the PBX told us one


@dataclass(frozen=True, slots=True)
class Connected:
    call_id: str
    at: float
    agent_id: str
    server: str = ""


@dataclass(frozen=True, slots=True)
class Ended:
    """Terminal: an answered call is over."""

    call_id: str
    at: float
    cause: int | None
    cause_text: str
    talk_s: float | None = None  # seconds connected to an agent; None if never connected


@dataclass(frozen=True, slots=True)
class AgentJoined:
    """The agent's phone leg is up and in its ConfBridge room (not merely dialled): only then can calls reach it."""

    agent_id: str
    at: float
    server: str = ""  # where the room is: only calls up on the same server can be moved in


@dataclass(frozen=True, slots=True)
class AgentLeft:
    """The agent's phone leg is gone (hung up, logged out, PBX restart)."""

    agent_id: str
    at: float
    cause: int | None = None
    server: str = ""


@dataclass(frozen=True, slots=True)
class PhoneContact:
    """An agent's SIP phone's registration as the PBX sees it (issue 18; Asterisk's ContactStatus: Created,
    Reachable, Updated, Unreachable -- its qualify OPTIONS went unanswered --, Removed)."""

    endpoint: str
    status: str
    at: float
    server: str = ""


@dataclass(frozen=True, slots=True)
class ServerDown:
    server: str
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ServerUp:
    server: str
    at: float


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call with one of our attempt ids (``cc-<digits>``) found up on a server that this process did not place
    (the engine restarted while it was up): the backend tracks it from now on, so it ends with a terminal event."""

    call_id: str
    answered: bool
    agent_id: str | None = None  # the agent room it is in, when it is in one


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a server still had up when we (re)connected and did not know of: the dialler adopts or hangs up each
    call (``LiveCall``). The agent legs found in their rooms are reported as ``AgentJoined``."""

    server: str
    at: float
    calls: tuple[LiveCall, ...]


CallEvent = Union[Ringing, Answered, Failed, Connected, Ended]
TelephonyEvent = Union[CallEvent, DigitPressed, AgentJoined, AgentLeft, ServerDown, ServerUp, Recovered, PhoneContact]
TERMINAL_EVENTS = (Failed, Ended)


class TelephonyError(Exception):
    """Base class of the port's errors."""


class OriginateRejected(TelephonyError):
    """The PBX refused the originate at once (no channel was created, no terminal event follows)."""

    def __init__(self, call_id: str, reason: str) -> None:
        super().__init__(f"originate {call_id} rejected: {reason}")
        self.call_id = call_id
        self.reason = reason


class NoServerAvailable(OriginateRejected):
    """No PBX connection is up to place the call on."""


class UnknownCall(TelephonyError):
    """The call id is not (or no longer) known to this backend."""


@runtime_checkable
class Telephony(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def originate(
        self,
        call_id: str,
        number: str,
        caller_id: str,
        variables: Mapping[str, str],
        timeout_s: float,
    ) -> None:
        """Start dialling ``number``; returns once the PBX accepted the attempt.

        Raises ``OriginateRejected`` when the PBX refuses at once, ``ValueError`` on bad input.
        The outcome arrives later as events keyed by ``call_id``.
        """

    async def connect(self, call_id: str, agent_id: str) -> None:
        """Move an answered call into the agent's room (``Connected`` follows)."""

    async def hangup(self, call_id: str) -> None: ...

    async def play(self, call_id: str, prompt: str) -> None:
        """Play a prompt (e.g. the safe-harbour message) to an answered call, then hang up."""

    async def agent_login(self, agent_id: str, phone: str) -> None:
        """Call the agent's phone and keep it in ConfBridge room ``agent-<id>`` (``AgentJoined``)."""

    async def agent_logout(self, agent_id: str) -> None: ...

    def events(self) -> AsyncIterator[TelephonyEvent]: ...


MonitorMode = Literal["listen", "whisper", "barge"]
MONITOR_MODES: tuple[MonitorMode, ...] = ("listen", "whisper", "barge")


@runtime_checkable
class CallControls(Protocol):
    """The live-call controls (issue 13), a second Protocol beside ``Telephony`` so a backend without them is still
    a telephony backend (the simulated PBX, Asterisk and Twilio all have them); the dialler checks
    ``isinstance(port, CallControls)`` and refuses a control the backend lacks. Agent ids are staff ids; a
    customer's call is named by our call id.

    Hold takes the customer OUT of the agent's room into a music-on-hold place (Asterisk: ``[cc-hold]``; Twilio:
    their conference participant on hold, hearing our hold URL), so nothing said in the room reaches them;
    ``unhold`` puts them back (no second ``Connected``). Transfers use ``connect`` to another agent's room. A room
    link joins two agents' rooms (Asterisk: a Local channel pair, one half in each room; Twilio: the second agent's
    leg moved into the first agent's conference): a consultation while the customer is held, or a three-way
    conference while they are in.
    Monitoring dials the supervisor's phone and listens on the agent's leg: ``listen`` (the supervisor hears the
    agent's side of the room: agent and customer), ``whisper`` (the agent hears the supervisor too, the customer
    does not), ``barge`` (everyone hears the supervisor)."""

    async def hold(self, call_id: str) -> None: ...

    async def unhold(self, call_id: str, agent_id: str) -> None: ...

    async def mute_agent(self, agent_id: str, muted: bool) -> None: ...

    async def send_dtmf(self, call_id: str, digits: str) -> None: ...

    async def link_rooms(self, agent_id: str, other_agent_id: str) -> None: ...

    async def unlink_rooms(self, agent_id: str, other_agent_id: str) -> None: ...

    async def to_ivr(self, call_id: str, menu: str) -> None:
        """Send the caller back to the hotline IVR at ``menu`` (an entry of the flow, e.g. ``channel_variables``
        ``IVR_ENTRY_ORDERS``; "" for its start): the call leaves the agent and is no longer ours — its ``Ended``
        (``cause_text`` "to_ivr") follows at once — and the caller goes on in a new IVR session."""

    async def monitor(self, supervisor_id: str, phone: str, agent_id: str, mode: MonitorMode) -> None: ...

    async def stop_monitor(self, supervisor_id: str) -> None: ...


_DTMF = re.compile(r"[0-9*#A-D]{1,32}")


def check_dtmf(digits: str) -> str:
    """Keys sent to a customer: 1-32 of 0-9 * # A-D."""
    if not isinstance(digits, str) or not _DTMF.fullmatch(digits):
        raise ValueError("DTMF digits must be 1-32 of 0-9 * # A-D")
    return digits


def check_menu(menu: str) -> str:
    """An IVR node id to return a caller to ("" for the flow's start)."""
    if menu == "":
        return menu
    return check_id(menu, "IVR menu")


def notsure_as(amd: AmdVerdict | None, policy: Literal["human", "machine"] = "human") -> AmdVerdict | None:
    """Resolve AMD's NOTSURE by campaign policy (default: treat as human, never hang up on a person)."""
    return policy if amd == "notsure" else amd


# --- input checks: everything that reaches a PBX goes through these --------------------------

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PROMPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_/.-]{0,127}")
_DIAL = re.compile(r"[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9@._+:/-]{1,128}")
_FORBIDDEN = re.compile(r"[\r\n\x00]")


DIAL_PLACEHOLDERS = ("number", "digits", "national")


def dial_string(template: str, number: str) -> str:
    """The Channel of an outbound call from the operator's template (setting ``ami_dial_template``).

    ``{number}`` is the number as we keep it (E.164, ``+8613912345678``), ``{digits}`` the same without the ``+``
    (``8613912345678``) and ``{national}`` the number as dialled inside its country (``13912345678``,
    ``02195500``), for carrier contexts that match ``_X.`` or national numbers only."""
    check_number(number)
    return template.format(number=number, digits=number.lstrip("+"), national=national_digits(number))


def national_digits(number: str) -> str:
    """``+8613912345678`` -> ``13912345678``; a number without ``+`` is taken as already national."""
    if not number.startswith("+"):
        return number
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number.lstrip("+")
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in national if c.isdigit())


def check_dial_template(template: str) -> str:
    """A template must name at least one number placeholder, no other field, and no line break."""
    if any(c in template for c in "\r\n"):
        raise ValueError("must not contain line breaks")
    try:
        sample = template.format(number="+8613912345678", digits="8613912345678", national="13912345678")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"unknown or malformed placeholder ({exc}); use {{number}}, {{digits}} or {{national}}") from None
    if sample == template.replace("{{", "{").replace("}}", "}"):
        raise ValueError("must contain {number}, {digits} or {national}, e.g. PJSIP/{number}@trunk")
    return template


AGENT_PHONE_PLACEHOLDERS = ("extension", "staff_id")


def check_agent_phone_template(template: str) -> str:
    """The agent-phone template (setting ``agent_phone_template``) names ``{extension}`` and/or ``{staff_id}``."""
    try:
        sample = template.format(extension="1004", staff_id="4")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"unknown or malformed placeholder ({exc}); use {{extension}} or {{staff_id}}") from None
    check_dial_string(sample)
    return template


def agent_phone(template: str, *, given: str, extension: str, staff_id: int) -> str | None:
    """Which phone an agent sits at, as a dial string: what they said at login (an extension, or a whole dial
    string such as ``PJSIP/1004`` when it has a ``/``), else the extension an admin set, through the template
    (``PJSIP/{extension}``); None when neither is known."""
    given = given.strip()
    if "/" in given:
        return check_dial_string(given)
    ext = given or extension.strip()
    if not ext:
        return None
    check_id(ext, "extension")
    return check_dial_string(template.format(extension=ext, staff_id=staff_id))


def check_number(number: str) -> str:
    """Digits with an optional leading +, 3 to 20 digits."""
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise ValueError("phone number must be 3-20 digits with an optional leading '+'")
    return number


def check_id(value: str, what: str = "call id") -> str:
    """Ids become channel ids, extensions and room names: letters, digits, '.', '_', '-' only."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{what} must be 1-64 of [A-Za-z0-9._-], got {value!r}")
    return value


def check_text(value: str, what: str = "value") -> str:
    """Free text sent in an AMI header or a channel variable: no CR, LF or NUL (AMI injection)."""
    if not isinstance(value, str) or _FORBIDDEN.search(value):
        raise ValueError(f"{what} must not contain CR, LF or NUL")
    if len(value) > 1024:
        raise ValueError(f"{what} is longer than 1024 characters")
    return value


def check_variables(variables: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
            raise ValueError(f"bad channel variable name {name!r}")
        out[name] = check_text(value, f"variable {name}")
    return out


def check_originate(call_id: str, number: str, caller_id: str, variables: Mapping[str, str]) -> dict[str, str]:
    """Every originate argument that reaches a PBX, checked once for all backends; returns the variables."""
    check_id(call_id)
    check_number(number)
    check_text(caller_id, "caller id")
    return check_variables(variables)


def check_prompt(prompt: str) -> str:
    if not isinstance(prompt, str) or not _PROMPT.fullmatch(prompt) or ".." in prompt:
        raise ValueError("prompt must be a sound file name of [A-Za-z0-9_/.-] without '..'")
    return prompt


def check_dial_string(phone: str) -> str:
    """An agent phone as a dial string, e.g. ``PJSIP/1001`` or ``Local/1001@sim-agents/n``."""
    if not isinstance(phone, str) or not _DIAL.fullmatch(phone):
        raise ValueError("agent phone must be a dial string like 'PJSIP/1001'")
    return phone


class EventStream:
    """One queue of telephony events with an async-iterator reader (used by every backend)."""

    _CLOSED = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._closed = False

    def publish(self, event: TelephonyEvent) -> None:
        if not self._closed:
            self._queue.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(self._CLOSED)

    def pending(self) -> list[TelephonyEvent]:
        """Take the events queued so far without waiting (tests, benchmarks)."""
        out: list[TelephonyEvent] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is self._CLOSED:
                self._queue.put_nowait(item)
                break
            out.append(cast(TelephonyEvent, item))  # anything but the sentinel is an event
        return out

    async def __aiter__(self) -> AsyncIterator[TelephonyEvent]:
        while True:
            item = await self._queue.get()
            if item is self._CLOSED:
                self._queue.put_nowait(item)  # later readers stop too
                return
            yield cast(TelephonyEvent, item)  # anything but the sentinel is an event
