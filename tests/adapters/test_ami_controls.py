"""The AMI actions behind the call controls, as the adapter writes them (not yet proven on a live Asterisk: the
dialplan they rely on is config/asterisk/extensions.conf's [cc-hold], [cc-room-link*], [cc-monitor-*],
[hotline] at the entry). The client's send is replaced by a recorder; the tracker knows one customer channel and one
agent leg."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from callcenter.ports.telephony import CallControls, Telephony


class Recorder(AmiClient):
    def __init__(self) -> None:
        super().__init__(AmiServer("127.0.0.1", 5038, "cc", "x"))
        self.sent: list[dict[str, Any]] = []
        self.tracker.channel_of = lambda call_id: "PJSIP/trunk-00000007" if call_id == "cc-000000000001" else None  # type: ignore[method-assign]
        self.tracker.agent_channel = lambda agent_id: "PJSIP/1004-00000003" if agent_id == "4" else None  # type: ignore[method-assign]

    async def _send(self, fields: Any, timeout: float | None = None, as_list: bool | None = False) -> Any:  # type: ignore[override]
        self.sent.append(dict(fields))
        return {"Response": "Success"}


async def test_the_controls_are_redirects_confbridge_mutes_dtmf_and_local_channels() -> None:
    c = Recorder()
    assert isinstance(c, Telephony) and isinstance(c, CallControls)
    call = "cc-000000000001"
    await c.hold(call)
    await c.unhold(call, "4")
    await c.mute_agent("4", True)
    await c.mute_agent("4", False)
    await c.send_dtmf(call, "1#")
    await c.link_rooms("4", "5")
    await c.unlink_rooms("4", "5")
    await c.to_ivr(call, "orders")
    await c.monitor("9", "PJSIP/1009", "4", "whisper")
    await c.stop_monitor("9")
    assert c.sent == [
        {"Action": "Redirect", "Channel": "PJSIP/trunk-00000007", "Context": "cc-hold", "Exten": "s", "Priority": "1"},
        {"Action": "Redirect", "Channel": "PJSIP/trunk-00000007", "Context": "cc-agent-join", "Exten": "4",
         "Priority": "1"},
        {"Action": "ConfbridgeMute", "Conference": "agent-4", "Channel": "PJSIP/1004-00000003"},
        {"Action": "ConfbridgeUnmute", "Conference": "agent-4", "Channel": "PJSIP/1004-00000003"},
        {"Action": "PlayDTMF", "Channel": "PJSIP/trunk-00000007", "Digit": "1", "Duration": "250"},
        {"Action": "PlayDTMF", "Channel": "PJSIP/trunk-00000007", "Digit": "#", "Duration": "250"},
        {"Action": "Originate", "Channel": "Local/5@cc-room-link/n", "Context": "cc-room-link-a", "Exten": "4",
         "Priority": "1", "Async": "true", "Timeout": "10000"},
        {"Action": "Hangup", "Channel": "/^Local.5@cc-room-link-/", "Cause": "16"},
        {"Action": "Setvar", "Channel": "PJSIP/trunk-00000007", "Variable": "CC_HANDOFF", "Value": ""},
        {"Action": "Setvar", "Channel": "PJSIP/trunk-00000007", "Variable": "CC_IVR_ENTRY", "Value": "orders"},
        {"Action": "Redirect", "Channel": "PJSIP/trunk-00000007", "Context": "hotline", "Exten": "s",
         "Priority": "1"},
        {"Action": "Originate", "Channel": "Local/4-9@cc-monitor-whisper/n", "Application": "Dial",
         "Data": "PJSIP/1009", "Async": "true", "Timeout": "30000"},
        {"Action": "Hangup", "Channel": "/^Local.[0-9]+-9@cc-monitor-/", "Cause": "16"},
    ]


async def test_bad_input_never_reaches_the_pbx() -> None:
    c = Recorder()
    with pytest.raises(ValueError):
        await c.send_dtmf("cc-000000000001", "1\r\nAction: Hangup")
    with pytest.raises(ValueError):
        await c.monitor("9", "PJSIP/1009", "4", "shout")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await c.to_ivr("cc-000000000001", "../x")
    assert c.sent == []
