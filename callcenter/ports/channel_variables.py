"""Channel-variable names shared by the engine and the dialplan (config/asterisk/extensions.conf).

One module, so the Python side and the dialplan never drift apart (Wazo keeps the same habit in
``wazo_agid/dialplan_variables.py``).  Keep the dialplan in step when you change a name here.
"""

from __future__ import annotations

import re

CC_CALL_ID = "CC_CALL_ID"  # our attempt id; also the channel's Uniqueid (Originate ChannelId)
CC_CAMPAIGN_ID = "CC_CAMPAIGN_ID"
CC_CLIENT_ID = "CC_CLIENT_ID"  # the client (or lead) the call is about
CC_IVR_SUMMARY = "CC_IVR_SUMMARY"  # what the caller did in the IVR, shown to the agent on hand-off
CC_HANDOFF = "CC_HANDOFF"  # "1" when the IVR asks for an agent
CC_AGENT_ID = "CC_AGENT_ID"  # agent whose ConfBridge room the call joins
CC_PROMPT = "CC_PROMPT"  # sound file played by the cc-play context (safe-harbour message)
CC_AMD = "CC_AMD"  # "1" when cc-outbound must run AMD() before reporting

# UserEvent the dialplan raises when an outbound call is answered (after AMD when enabled).
USEREVENT_CALL_ANSWERED = "CallAnswered"

# The agent hands a caller to the hotline's order menu: the engine sets CC_IVR_ENTRY (and clears CC_HANDOFF, which
# a previous IVR run may have left at "1") on the caller's channel, then Redirects it to CONTEXT_HOTLINE,s,1; the
# dialplan passes CC_IVR_ENTRY to the FastAGI as its first argument (agi_arg_1), the flow starts there.
CC_IVR_ENTRY = "CC_IVR_ENTRY"
CONTEXT_HOTLINE = "hotline"
IVR_ENTRY_ORDERS = "orders"

# Dialplan contexts the engine sends calls to.
CONTEXT_OUTBOUND = "cc-outbound"
CONTEXT_AGENT_JOIN = "cc-agent-join"
CONTEXT_AGENT_LOGIN = "cc-agent-login"
CONTEXT_PLAY = "cc-play"
CONTEXT_NOTIFY_MENU = "cc-notify-menu"  # a notification's message with a one-key menu (Read(): keys during it count)
USEREVENT_NOTIFY_DIGIT = "NotifyDigit"  # raised there with the key pressed (CallID, Digit)

# ConfBridge room of one agent: the agent's phone stays in it for the whole shift.
AGENT_ROOM_PREFIX = "agent-"


def agent_room(agent_id: str) -> str:
    return f"{AGENT_ROOM_PREFIX}{agent_id}"


def attempt_call_id(attempt_id: int) -> str:
    """The id the PBX knows an outbound attempt by (Originate ``ChannelId``, ``CC_CALL_ID``).

    Asterisk 22 looks unique ids up by prefix, so a bare attempt number collides with Asterisk's own uniqueids
    (epoch seconds: ``1764...``) and with other attempts (``17`` with ``179``): it was refused as "already in use"
    whenever an Asterisk-named channel was up. ``cc-`` keeps our ids apart from Asterisk's, and the fixed width
    keeps one attempt's id from being the prefix of another's."""
    if attempt_id < 0 or attempt_id >= 10**12:
        raise ValueError(f"attempt id out of range: {attempt_id}")
    return f"cc-{attempt_id:012d}"


_ATTEMPT_CALL_ID = re.compile(r"cc-[0-9]{12}")
_AGENT_LEG_ID = re.compile(r"agent-([A-Za-z0-9._-]{1,64})-leg")


def is_attempt_call_id(value: str) -> bool:
    """Whether ``value`` is an id ``attempt_call_id`` gives (a Local channel's other half, ``...;2``, is not)."""
    return _ATTEMPT_CALL_ID.fullmatch(value) is not None


def agent_of_leg_id(uniqueid: str) -> str | None:
    """The agent whose phone leg has this uniqueid (``agent_leg_id``'s inverse), else None."""
    m = _AGENT_LEG_ID.fullmatch(uniqueid)
    return m.group(1) if m else None


def agent_leg_id(agent_id: str) -> str:
    """Uniqueid (Originate ChannelId) of an agent's phone leg."""
    return f"agent-{agent_id}-leg"


# --- inbound: IVR hand-offs (one routing model with outbound calls: callcenter.services.dialer.core) ---------------------
CC_LANG = "CC_LANG"  # the caller's IVR language: the hold and sorry prompts are cc/<lang>/...
CC_HANDOFF_WAIT_S = "CC_HANDOFF_WAIT_S"  # the dialplan's own bound on the wait (a little over the engine's)
CONTEXT_HANDOFF_WAIT = "cc-handoff-wait"  # where a handed-off caller waits for the engine's Redirect
USEREVENT_HANDOFF_WAITING = "HandoffWaiting"  # raised (and repeated) there: the channel waits, CallID tells whose
HANDOFF_PREFIX = "cc-h"


def handoff_call_id(ivr_session_id: int) -> str:
    """The call id of an IVR hand-off (the caller's channel waiting for an agent): ``cc-h`` + the IVR session's
    id, fixed width. Never an Originate ``ChannelId`` (the channel is Asterisk's, named by it), but kept apart
    from attempt ids (``cc-0…``) and Asterisk's uniqueids all the same."""
    if ivr_session_id < 0 or ivr_session_id >= 10**12:
        raise ValueError(f"IVR session id out of range: {ivr_session_id}")
    return f"{HANDOFF_PREFIX}{ivr_session_id:012d}"


def handoff_session_id(call_id: str) -> int | None:
    """The IVR session id of a hand-off call id; None for any other id."""
    rest = call_id[len(HANDOFF_PREFIX):] if call_id.startswith(HANDOFF_PREFIX) else ""
    return int(rest) if len(rest) == 12 and rest.isdigit() else None
