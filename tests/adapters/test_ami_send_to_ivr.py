"""The AMI adapter hands a caller back to the hotline IVR: CC_HANDOFF cleared, CC_IVR_ENTRY set, Redirect to
[hotline],s,1 (the shipped dialplan passes CC_IVR_ENTRY to the FastAGI as agi_arg_1); the call ends for the
engine at once (``Ended``, "to_ivr") and its channel's later Hangup is no longer reported. The actions are those of
``play()`` (Setvar + Redirect, proven live); this sequence itself is not yet captured from a live Asterisk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from panoramisk.message import Message

from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiServer
from callcenter.ports import channel_variables as V
from callcenter.ports.telephony import Ended


async def test_to_ivr_sets_the_entry_and_redirects_to_the_hotline() -> None:
    client = AmiClient(AmiServer("127.0.0.1", 1, "callcenter", "x"), AmiOptions(heartbeat_s=0, tick_s=0))
    sent: list[dict[str, str]] = []

    async def fake_send(action: dict[str, str], **_: Any) -> Message:
        sent.append(dict(action))
        return Message({"Response": "Success"})

    client._send = fake_send  # type: ignore[method-assign]
    call_id = "cc-000000000042"
    loop = asyncio.get_running_loop()
    client.tracker.track(call_id, loop.time(), 30.0)
    client.tracker.feed({"Event": "Newchannel", "Uniqueid": call_id, "Channel": "Local/13900000001@trunk-0001;1"},
                        loop.time())
    await client.to_ivr(call_id, V.IVR_ENTRY_ORDERS)
    assert sent == [
        {"Action": "Setvar", "Channel": "Local/13900000001@trunk-0001;1", "Variable": "CC_HANDOFF", "Value": ""},
        {"Action": "Setvar", "Channel": "Local/13900000001@trunk-0001;1", "Variable": "CC_IVR_ENTRY",
         "Value": "orders"},
        {"Action": "Redirect", "Channel": "Local/13900000001@trunk-0001;1", "Context": "hotline", "Exten": "s",
         "Priority": "1"},
    ]
    events = client.stream.pending()
    ended = [e for e in events if isinstance(e, Ended)]
    assert len(ended) == 1 and ended[0].call_id == call_id and ended[0].cause_text == "to_ivr"
    assert not client.tracker.is_live(call_id)
    later = client.tracker.feed({"Event": "Hangup", "Uniqueid": call_id, "Cause": "16",
                                 "Channel": "Local/13900000001@trunk-0001;1"}, loop.time() + 60)
    assert later == []  # the caller's channel goes on in the IVR; its end is not ours


def test_the_shipped_dialplan_passes_the_entry_to_the_fastagi() -> None:
    conf = (Path(__file__).resolve().parents[2] / "config" / "asterisk" / "extensions.conf").read_text()
    hotline = conf.split("[hotline]", 1)[1].split("\n[", 1)[0]
    assert "AGI(agi://127.0.0.1:4573/hotline,${CC_IVR_ENTRY})" in hotline
