"""The AMI adapter against every real Asterisk 22 capture, replayed from a fake server on 127.0.0.1."""

from __future__ import annotations

import pytest

from callcenter.adapters.telephony.ami import AmiLoginError, AmiOptions
from callcenter.adapters.telephony.ami_replay import AFTER_RESTART  # synthetic: Asterisk back after the restart
from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    Connected,
    Ended,
    Failed,
    NoServerAvailable,
    Ringing,
    ServerDown,
    ServerUp,
    notsure_as,
)
from fake_ami import TEST_OPTIONS, ReplayServer, client_for, collect_until, load_capture, parse_capture


def of(events, call_id):
    return [e for e in events if getattr(e, "call_id", None) == call_id]


def terminal(events, ids):
    done = {e.call_id for e in events if isinstance(e, (Failed, Ended))}
    return set(ids) <= done


async def test_originate_outcomes_map_reasons_and_honour_channel_id():
    opts = AmiOptions(**{**TEST_OPTIONS.__dict__, "dial_template": "Local/{number}@sim-customers"})
    async with ReplayServer(load_capture("originate_outcomes")) as server:
        client = client_for(server, opts)
        await client.start()
        ids = [f"cc-1380000000{n}" for n in (1, 2, 3, 4)]
        for n, call_id in zip((1, 2, 3, 4), ids):
            await client.originate(call_id, f"1380000000{n}", "95555 <95555>", {}, 20)
        events = await collect_until(client, lambda evs: terminal(evs, ids))
        await client.aclose()

    assert server.mismatches == [] and server.unexpected == []
    sent = [dict(f) for f in server.received if dict(f)["Action"] == "Originate"]
    assert [s["ChannelId"] for s in sent] == ids
    assert all(s["Async"] == "true" for s in sent)

    assert isinstance(events[0], ServerUp)
    answered = of(events, ids[0])
    assert [type(e) for e in answered] == [Ringing, Answered, Ended]
    assert answered[1].amd is None
    assert answered[2].cause == 16 and answered[2].cause_text == "Normal Clearing"
    assert answered[2].talk_s is None  # never connected to an agent
    busy, = of(events, ids[1])
    assert busy == Failed(ids[1], busy.at, "busy", 17)
    noans = of(events, ids[2])
    assert [type(e) for e in noans] == [Ringing, Failed] and noans[1].reason == "no_answer"
    cong, = of(events, ids[3])
    assert cong.reason == "congestion"
    # exactly one terminal event per attempt, nothing left in flight
    assert sum(isinstance(e, (Failed, Ended)) for e in events) == 4
    assert client.tracker.in_flight() == set()


async def test_answered_call_redirected_into_agent_room():
    opts = AmiOptions(**{**TEST_OPTIONS.__dict__, "dial_template": "Local/{number}@sim-customers/n"})
    async with ReplayServer(load_capture("answered_to_agent")) as server:
        client = client_for(server, opts)
        await client.start()
        await client.agent_login("1001", "Local/1001@sim-agents/n")
        joined = await collect_until(client, lambda evs: any(isinstance(e, AgentJoined) for e in evs))
        await client.originate("call-42", "13800000001", "95555", {"CC_CLIENT_ID": "c-9"}, 20)
        got = await collect_until(client, lambda evs: any(isinstance(e, Answered) for e in evs))
        await client.connect("call-42", "1001")
        got += await collect_until(client, lambda evs: any(isinstance(e, Connected) for e in evs))
        alive = await client.reconcile()  # CoreShowChannels: an EventList
        status = await client.query("Status")
        got += await collect_until(client, lambda evs: any(isinstance(e, Ended) for e in evs))
        await client.agent_logout("1001")  # Hangup answered as an EventList; recorded as a regex
        got += await collect_until(client, lambda evs: any(isinstance(e, AgentLeft) for e in evs))
        await client.aclose()

    assert server.mismatches == [] and server.unexpected == []
    assert joined[-1] == AgentJoined("1001", joined[-1].at, server=client.name)
    redirect = next(dict(f) for f in server.received if dict(f)["Action"] == "Redirect")
    assert redirect["Channel"] == "Local/13800000001@sim-customers-00000009;1"
    assert (redirect["Context"], redirect["Exten"]) == ("cc-agent-join", "1001")
    assert alive == {"agent-1001-leg", "agent-1001-leg2", "call-42", "call-42-2"}
    assert len(status) == 4 and {s["Uniqueid"] for s in status} == alive
    calls = of(got, "call-42")
    assert [type(e) for e in calls] == [Ringing, Answered, Connected, Ended]
    assert calls[2].agent_id == "1001"
    assert calls[3].cause == 16 and calls[3].talk_s is not None and calls[3].talk_s >= 0
    assert got[-1] == AgentLeft("1001", got[-1].at, 0, server=client.name)
    originate = next(dict(f) for f in server.received if dict(f).get("ChannelId") == "call-42")
    variables = [v for k, v in next(f for f in server.received if dict(f).get("ChannelId") == "call-42") if k == "Variable"]
    assert "CC_CALL_ID=call-42" in variables and "CC_CLIENT_ID=c-9" in variables
    assert originate["Context"] == "cc-outbound"


async def test_amd_outcomes_machine_and_notsure():
    opts = AmiOptions(
        **{**TEST_OPTIONS.__dict__, "dial_template": "Local/{number}@sim-amd/n", "amd": True}
    )
    async with ReplayServer(load_capture("amd_outcomes")) as server:
        client = client_for(server, opts)
        await client.start()
        ids = ["amd-13800000007", "amd-13800000008"]
        await client.originate(ids[0], "13800000007", "95555", {}, 20)
        await client.originate(ids[1], "13800000008", "95555", {}, 20)
        events = await collect_until(client, lambda evs: terminal(evs, ids))
        await client.aclose()

    assert server.mismatches == [] and server.unexpected == []
    human_ish = [e for e in of(events, ids[0]) if isinstance(e, Answered)]
    machine = [e for e in of(events, ids[1]) if isinstance(e, Answered)]
    # one Answered each, reported by the UserEvent (not at OriginateResponse)
    assert [(e.amd, e.amd_cause) for e in machine] == [("machine", "LONGGREETING-1500-1500")]
    assert [(e.amd, e.amd_cause) for e in human_ish] == [("notsure", "TOOLONG-4901")]
    assert notsure_as(human_ish[0].amd) == "human"
    assert notsure_as(human_ish[0].amd, "machine") == "machine"
    assert notsure_as(machine[0].amd) == "machine"
    assert all(isinstance(of(events, i)[-1], Ended) for i in ids)


async def test_bad_login_is_a_clear_error_and_not_retried():
    async with ReplayServer(load_capture("bad_login")) as server:
        client = client_for(server, secret="wrong")
        with pytest.raises(AmiLoginError, match="Authentication failed"):
            await client.start()
        assert client.login_error is not None
        assert not client.connected
        # no retry loop: the supervisor has stopped after one connection
        assert client._supervisor is not None
        await client._supervisor
        assert server.connections == 1 and client.connections == 1
        with pytest.raises(NoServerAvailable):
            await client.originate("c1", "13800000001", "95555", {}, 20)
        await client.aclose()
    logins = [dict(f) for f in server.received]
    assert [f["Action"] for f in logins] == ["Login"]
    assert logins[0]["Secret"] == "wrong"




async def test_restart_midcall_reconnects_and_reconciles():
    opts = AmiOptions(**{**TEST_OPTIONS.__dict__, "dial_template": "Local/{number}@sim-customers/n"})
    first = load_capture("restart_midcall")
    async with ReplayServer(first, parse_capture(AFTER_RESTART, "after")) as server:
        client = client_for(server, opts)
        await client.start()
        await client.originate("call-77", "13800000001", "95555", {}, 20)
        events = await collect_until(client, lambda evs: sum(isinstance(e, ServerUp) for e in evs) == 2)
        await client.aclose()
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ServerUp"
    call = of(events, "call-77")
    assert [type(e) for e in call] == [Ringing, Answered, Ended]
    assert call[-1].cause == 0 and call[-1].cause_text == "Unknown"
    down = [e for e in events if isinstance(e, ServerDown)]
    assert len(down) == 1 and down[0].reason == "restart"
    assert kinds.index("ServerDown") < len(kinds) - 1 and kinds[-1] == "ServerUp"
    assert server.connections == 2
    assert [dict(f)["Action"] for f in server.received] == ["Login", "Originate", "Login", "CoreShowChannels", "Logoff"]
    assert client.tracker.in_flight() == set()
    assert server.unexpected == []
