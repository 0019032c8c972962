"""Telephony: the port (``port``) and its backends.

- ``callcenter.telephony.simulated.SimulatedPbx`` -- in-process PBX (default backend)
- ``callcenter.telephony.ami.AmiClient`` / ``AmiPool`` -- Asterisk over AMI (panoramisk)
- ``callcenter.telephony.twilio_calls.TwilioCalls`` -- Twilio REST + status callbacks
Backends are imported from their modules, so importing the port pulls in no protocol library.
"""

from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    CallEvent,
    Connected,
    Ended,
    Failed,
    NoServerAvailable,
    OriginateRejected,
    Ringing,
    ServerDown,
    ServerUp,
    Telephony,
    TelephonyError,
    TelephonyEvent,
    notsure_as,
)

__all__ = [
    "AgentJoined",
    "AgentLeft",
    "Answered",
    "CallEvent",
    "Connected",
    "Ended",
    "Failed",
    "NoServerAvailable",
    "OriginateRejected",
    "Ringing",
    "ServerDown",
    "ServerUp",
    "Telephony",
    "TelephonyError",
    "TelephonyEvent",
    "notsure_as",
]
