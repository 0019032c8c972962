"""AMI scenarios run twice: live against a real Asterisk 22 with our shipped dialplan (tests/live/, which
records the traffic) and, in the ordinary suite, against the replay of that recording
(tests/adapters/test_live_captures.py). The same code and the same assertions both times, so CI keeps
checking what was proven live.

Each scenario takes an AMI client that is not started yet and ``pbx(command)``, which runs an Asterisk CLI
command on the live server (a no-op on replay, where the recorded bytes already hold its effect)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from callcenter.adapters.telephony.ami import AmiClient, AmiLoginError, AmiOptions, AmiPool, AmiServer
from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    Connected,
    Ended,
    Failed,
    LiveCall,
    Recovered,
    ServerDown,
    TelephonyError,
)
from callcenter.ports.channel_variables import attempt_call_id
from tests.live.asterisk import LIVE_RECORDINGS

LIVE_CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22-live"

# As in the live tests' Asterisk: customers are Local channels of tests/live/sim-parties.conf.
OPTIONS = AmiOptions(dial_template="Local/{number}@sim-customers", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5)

Pbx = Callable[[str], object]
Scenario = Callable[[AmiClient, Pbx], Awaitable[None]]


async def next_of(events: AsyncIterator[object], kinds: tuple[type, ...], timeout: float = 40.0) -> object:
    """The next event of one of ``kinds`` (the timeout only guards against a hung test)."""

    async def first() -> object:
        async for event in events:
            if isinstance(event, kinds):
                return event
        raise AssertionError("event stream closed")

    return await asyncio.wait_for(first(), timeout)


async def bad_secret(ami: AmiClient, pbx: Pbx) -> None:
    with pytest.raises(AmiLoginError):
        await ami.start()
    await ami.aclose()


async def one_digit_agent_room(ami: AmiClient, pbx: Pbx) -> None:
    """Staff id 4 (the demo agent01): the shipped _X pattern and cc_agent_* profiles put its phone in agent-4."""
    async with ami:
        events = ami.events().__aiter__()
        await ami.agent_login("4", "Local/4@sim-agent-phones")
        joined = await next_of(events, (AgentJoined, AgentLeft))
        assert isinstance(joined, AgentJoined) and joined.agent_id == "4"
        rooms = await ami.query("ConfbridgeListRooms")
        assert [r.get("Conference") for r in rooms] == ["agent-4"]
        await ami.agent_logout("4")
        left = await next_of(events, (AgentLeft,))
        assert isinstance(left, AgentLeft) and left.agent_id == "4"


async def outbound_outcomes(ami: AmiClient, pbx: Pbx) -> None:
    """An answering customer, a busy one and a congested one: one outcome each."""
    expected = {"cc-live-o1": "answered", "cc-live-o2": "busy", "cc-live-o4": "congestion"}
    async with ami:
        events = ami.events().__aiter__()
        for call_id in expected:
            await ami.originate(call_id, "9000" + call_id[-1], "95500", {}, timeout_s=10)
        seen: dict[str, str] = {}
        while len(seen) < len(expected):
            event = await next_of(events, (Answered, Failed))
            assert isinstance(event, (Answered, Failed))
            seen[event.call_id] = "answered" if isinstance(event, Answered) else event.reason
        assert seen == expected
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == "cc-live-o1" and ended.talk_s is None


async def answered_into_agent_room(ami: AmiClient, pbx: Pbx) -> None:
    """The agent's phone waits in agent-7; the answered customer is Redirected in; both are in the room."""
    async with ami:
        events = ami.events().__aiter__()
        await ami.agent_login("7", "Local/7@sim-agent-phones")
        assert isinstance(await next_of(events, (AgentJoined, AgentLeft)), AgentJoined)
        await ami.originate("cc-live-c1", "90006", "95500", {}, timeout_s=10)
        answered = await next_of(events, (Answered, Failed))
        assert isinstance(answered, Answered)
        await ami.connect("cc-live-c1", "7")
        connected = await next_of(events, (Connected, Ended))
        assert isinstance(connected, Connected) and connected.agent_id == "7"
        members = await ami.query("ConfbridgeList", Conference="agent-7")
        assert len(members) == 2
        await ami.hangup("cc-live-c1")
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == "cc-live-c1"
        await ami.agent_logout("7")
        assert isinstance(await next_of(events, (AgentLeft,)), AgentLeft)


async def restart_is_told_from_a_failure(ami: AmiClient, pbx: Pbx) -> None:
    """With the shipped ``read = system`` the engine sees Asterisk's Shutdown (Restart: True) before the
    socket closes, so it knows calls were cut by a restart."""
    async with ami:
        events = ami.events().__aiter__()
        pbx("core restart now")
        down = await next_of(events, (ServerDown,))
        assert isinstance(down, ServerDown) and down.reason == "restart", down


async def call_ids_never_collide(ami: AmiClient, pbx: Pbx) -> None:
    """Attempts 1 and 17 while a channel Asterisk named itself is up (any call the engine did not place, e.g. a
    hotline caller): Asterisk 22 refuses a bare ``17`` (its uniqueids start with epoch seconds, ``17...``, and it
    looks ChannelIds up by prefix); the ids the engine gives attempts pass."""
    async with ami:
        events = ami.events().__aiter__()
        await ami.agent_login("1", "Local/1@sim-agent-phones")
        assert isinstance(await next_of(events, (AgentJoined, AgentLeft)), AgentJoined)
        other = await ami._send({"Action": "Originate", "Channel": "Local/90006@sim-customers", "Application": "Wait",
                                 "Data": "20", "Async": "true"}, as_list=False)  # no ChannelId: Asterisk names it
        assert other.get("Response") == "Success"
        await asyncio.sleep(0.5)  # Originate is asynchronous: let the channel come up before the next Originate
        await ami.originate("17", "90001", "95500", {}, timeout_s=10)  # queued, then refused by the channel lookup
        refused = await next_of(events, (Answered, Failed))
        assert isinstance(refused, Failed) and refused.call_id == "17", refused
        ids = [attempt_call_id(1), attempt_call_id(17)]
        for call_id in ids:
            await ami.originate(call_id, "90001", "95500", {}, timeout_s=10)
        answered: set[str] = set()
        while len(answered) < 2:
            event = await next_of(events, (Answered, Failed))
            assert isinstance(event, Answered), event
            answered.add(event.call_id)
        assert answered == set(ids)
        await ami.agent_logout("1")
        assert isinstance(await next_of(events, (AgentLeft,)), AgentLeft)


async def national_dial_string(ami: AmiClient, pbx: Pbx) -> None:
    """A carrier context that matches national numbers only: the ``{national}`` placeholder of the dial template
    turns our E.164 ``+8613900000001`` into ``13900000001``, and the call is answered."""
    async with ami:
        events = ami.events().__aiter__()
        await ami.originate(attempt_call_id(5), "+8613900000001", "95500", {}, timeout_s=10)
        answered = await next_of(events, (Answered, Failed))
        assert isinstance(answered, Answered), answered


national_dial_string.options = AmiOptions(  # type: ignore[attr-defined]  # the scenario's own dial template
    dial_template="Local/{national}@sim-national", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5)


async def amd_person_and_machine(ami: AmiClient, pbx: Pbx) -> None:
    """With ``ami_amd`` the answered calls run the shipped [cc-outbound-amd] (AMD() with the shipped amd.conf):
    a person who says one short word and waits is ``human``; a long recorded greeting is ``machine``."""
    expected = {attempt_call_id(7): "human", attempt_call_id(8): "machine"}
    async with ami:
        events = ami.events().__aiter__()
        for call_id, number in zip(expected, ("90007", "90008")):
            await ami.originate(call_id, number, "95500", {}, timeout_s=10)
        seen: dict[str, object] = {}
        while len(seen) < len(expected):
            event = await next_of(events, (Answered, Failed))
            assert isinstance(event, Answered), event
            seen[event.call_id] = event.amd
            assert event.amd_cause, event  # Asterisk says why (e.g. HUMAN-800-..., LONGGREETING-...)
        assert seen == expected
        for call_id in expected:
            await ami.hangup(call_id)
        ended: set[str] = set()
        while len(ended) < len(expected):
            event = await next_of(events, (Ended,))
            assert isinstance(event, Ended)
            ended.add(event.call_id)


amd_person_and_machine.options = AmiOptions(  # type: ignore[attr-defined]  # answered calls run AMD()
    dial_template="Local/{number}@sim-customers", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5, amd=True)


async def safe_harbour_played(ami: AmiClient, pbx: Pbx) -> None:
    """An answered call no agent takes hears the dialler's SAFE_HARBOUR_PROMPT: ``play()`` sets CC_PROMPT and
    Redirects the call into the shipped [cc-play], which plays it and hangs up (tests/live checks Asterisk's log
    for the file that was played)."""
    call_id = attempt_call_id(9)
    async with ami:
        events = ami.events().__aiter__()
        await ami.originate(call_id, "90006", "95500", {}, timeout_s=10)  # answers and would stay 60 s
        answered = await next_of(events, (Answered, Failed))
        assert isinstance(answered, Answered), answered
        await ami.play(call_id, SAFE_HARBOUR_PROMPT)
        ended = await next_of(events, (Ended,))  # [cc-play] hangs up once the prompt has played
        assert isinstance(ended, Ended) and ended.call_id == call_id, ended


async def machine_hears_leave_message(ami: AmiClient, pbx: Pbx) -> None:
    """AMD says ``machine``; the dialler's MACHINE_PROMPT is played through [cc-play] and the call ends."""
    call_id = attempt_call_id(18)
    async with ami:
        events = ami.events().__aiter__()
        await ami.originate(call_id, "90008", "95500", {}, timeout_s=10)
        answered = await next_of(events, (Answered, Failed))
        assert isinstance(answered, Answered) and answered.amd == "machine", answered
        await ami.play(call_id, MACHINE_PROMPT)
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == call_id, ended


machine_hears_leave_message.options = amd_person_and_machine.options  # type: ignore[attr-defined]

async def agent_phone_never_answers(ami: AmiClient, pbx: Pbx) -> None:
    """Real-Asterisk finding 4: the login Originate of a phone nobody picks up is queued, the phone rings, and it
    never joins its room: no AgentJoined (the dialler dials no lead for it), then AgentLeft at the ring timeout."""
    async with ami:
        events = ami.events().__aiter__()
        await ami.agent_login("6", "Local/6@sim-agent-noanswer")
        first = await next_of(events, (AgentJoined, AgentLeft))
        assert isinstance(first, AgentLeft) and first.agent_id == "6" and first.server == ami.name, first


agent_phone_never_answers.options = AmiOptions(  # type: ignore[attr-defined]  # a short ring for the test
    dial_template="Local/{number}@sim-customers", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5,
    agent_ring_timeout_s=4)


async def recorded_call_muted_and_stopped(ami: AmiClient, pbx: Pbx) -> None:
    """The call recording over AMI (``record_*``, as ``services.call_recording`` drives it): the shipped dialplan
    starts MixMonitor on the customer's channel as the Redirect puts it in the agent's room (Asterisk reports
    ``MixMonitorStart``), ``MixMonitorMute`` on and off (a PIN), ``StopMixMonitor`` when the agent hangs up, then
    the Hangup. Live (``pbx`` answers), the file Asterisk wrote is read back: its duration is the time recorded
    and the muted stretch is silence amid the customer's tone."""
    live = pbx("core show version") is not None
    call_id = attempt_call_id(21)
    name = "rec-live-21"
    if live:
        (LIVE_RECORDINGS / f"{call_id}-9.wav").unlink(missing_ok=True)

    async def talk(seconds: float) -> None:
        if live:  # the live call needs the time to pass; the replay has the bytes already
            await asyncio.sleep(seconds)

    async with ami:
        events = ami.events().__aiter__()
        await ami.agent_login("9", "Local/9@sim-agent-phones")
        assert isinstance(await next_of(events, (AgentJoined, AgentLeft)), AgentJoined)
        await ami.originate(call_id, "90001", "95500", {}, timeout_s=10)
        assert isinstance(await next_of(events, (Answered, Failed)), Answered)
        loop = asyncio.get_running_loop()
        await ami.connect(call_id, "9")
        t0 = loop.time()  # the dialplan starts the recording as the call joins the room
        connected = await next_of(events, (Connected, Ended))
        assert isinstance(connected, Connected)
        await ami.record_start(call_id, name)
        await talk(2.0)
        await ami.record_mute(call_id, True)
        t1 = loop.time() - t0
        await talk(2.0)
        await ami.record_mute(call_id, False)
        t2 = loop.time() - t0
        await talk(2.0)
        await ami.record_stop(call_id)
        t3 = loop.time() - t0
        await ami.hangup(call_id)
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == call_id
        if live:
            data = await ami.record_audio(call_id, name)
            assert data is not None, "MixMonitor left no finished file"
            check_recording(data, t1, t2, t3)
        await ami.agent_logout("9")
        assert isinstance(await next_of(events, (AgentLeft,)), AgentLeft)


def check_recording(data: bytes, muted_from: float, muted_to: float, stopped: float) -> None:
    """The recording's duration is the time recorded; the muted stretch is silence, the rest is not."""
    from callcenter.adapters.recordings_simulated import silent_share
    from callcenter.ports.recordings import wav_duration_s

    duration = wav_duration_s(data)
    assert abs(duration - stopped) < 0.5, (duration, stopped)
    assert silent_share(data, muted_from + 0.2, muted_to - 0.2) > 0.99
    assert silent_share(data, 0.3, muted_from - 0.2) < 0.1
    assert silent_share(data, muted_to + 0.2, duration - 0.3) < 0.1


recorded_call_muted_and_stopped.options = AmiOptions(  # type: ignore[attr-defined]  # a customer who keeps talking
    dial_template="Local/{number}@sim-talker", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5,
    recordings_dir=str(LIVE_RECORDINGS))


SAFE_HARBOUR_PROMPT = "cc/safe-harbour"  # as callcenter.services.dialer.engine plays them
MACHINE_PROMPT = "cc/leave-message"


async def sip_desk_phone_takes_the_agent_leg(ami: AmiClient, pbx: Pbx) -> None:
    """Issue 18, over real SIP: agent 7 sits at the desk SIP phone ``1004`` (a sipp UAS registered to Asterisk with
    the digest the engine wrote into pjsip_agents.conf): the engine dials ``PJSIP/1004`` for the agent leg, the
    phone answers, its leg joins agent-7; a customer reached over SIP (another sipp UAS, PJSIP/{number}@
    sim-sip-customer) answers and is Redirected in; both PJSIP channels are in the room, with RTP both ways."""
    async with ami:
        events = ami.events().__aiter__()
        await ami.agent_login("7", "PJSIP/1004")
        assert isinstance(await next_of(events, (AgentJoined, AgentLeft)), AgentJoined)
        await ami.originate("cc-live-s1", "90006", "95500", {}, timeout_s=10)
        answered = await next_of(events, (Answered, Failed))
        assert isinstance(answered, Answered), answered
        await ami.connect("cc-live-s1", "7")
        connected = await next_of(events, (Connected, Ended))
        assert isinstance(connected, Connected) and connected.agent_id == "7"
        members = await ami.query("ConfbridgeList", Conference="agent-7")
        channels = sorted(str(m.get("Channel", "")).rsplit("-", 1)[0] for m in members)
        assert channels == ["PJSIP/1004", "PJSIP/sim-sip-customer"], channels
        await asyncio.sleep(2.0)  # both parties' pcaps play into the room
        stats = pbx("pjsip show channelstats")
        if isinstance(stats, str):  # live: Asterisk's own RTP counters for both legs (replays have no CLI)
            rows = [line.split() for line in stats.splitlines() if "1004-" in line or "sim-sip-custom" in line]
            assert len(rows) == 2, stats
            for row in rows:  # BridgeId ChannelId UpTime Codec | Receive Count Lost Pct Jitter | Transmit Count ...
                assert int(row[4]) > 0 and int(row[8]) > 0, stats  # packets received and sent on each leg
        await ami.hangup("cc-live-s1")
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == "cc-live-s1"
        await ami.agent_logout("7")
        assert isinstance(await next_of(events, (AgentLeft,)), AgentLeft)


sip_desk_phone_takes_the_agent_leg.options = AmiOptions(  # type: ignore[attr-defined]  # customers over SIP
    dial_template="PJSIP/{number}@sim-sip-customer", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5)


async def sip_customer_outcomes(ami: AmiClient, pbx: Pbx) -> None:
    """Issue 18, the dialler's customers over real SIP (tests/live/sipp/outcomes.xml, one sipp UAS behind
    ``PJSIP/{number}@sim-sip-customer``, by the number's last digit): 486 Busy Here is ``busy``; 180 Ringing until
    the originate timeout (Asterisk CANCELs) is ``no_answer``; 503 Service Unavailable is ``congestion``; a
    pick-up with a long recorded greeting runs the shipped [cc-outbound-amd] and AMD() says ``machine``."""
    failing = {attempt_call_id(32): "busy", attempt_call_id(33): "no_answer", attempt_call_id(34): "congestion"}
    machine = attempt_call_id(38)
    async with ami:
        events = ami.events().__aiter__()
        for call_id in (*failing, machine):
            await ami.originate(call_id, "9000" + call_id[-1], "95500", {}, timeout_s=6)
        seen: dict[str, object] = {}
        while len(seen) < len(failing) + 1:
            event = await next_of(events, (Answered, Failed))
            assert isinstance(event, (Answered, Failed))
            if isinstance(event, Answered):
                assert event.amd_cause, event  # Asterisk says why (LONGGREETING-..., MAXWORDS-...)
                seen[event.call_id] = event.amd
            else:
                seen[event.call_id] = event.reason
        assert seen == {**failing, machine: "machine"}, seen
        await ami.hangup(machine)
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == machine, ended


sip_customer_outcomes.options = AmiOptions(  # type: ignore[attr-defined]  # customers over SIP, AMD on answer
    dial_template="PJSIP/{number}@sim-sip-customer", heartbeat_s=0, tick_s=0, backoff_initial_s=0.5, amd=True)


async def sip_phone_states(ami: AmiClient, pbx: Pbx) -> None:
    """Issue 18, what the engine reads at start (ContactStatus only tells changes): of the agents' endpoints
    ``1004`` (a sipp desk phone registered with the digest) and ``1005`` (written into pjsip_agents.conf, never
    registered), Asterisk says ``Reachable`` and ``Unavailable`` (``Getvar`` of ``DEVICE_STATE(PJSIP/<endpoint>)``,
    within the call account's write class); ``1099`` (no such endpoint) is ``Unavailable`` too."""
    async with ami:
        states = await ami.phone_states(["1004", "1005", "1099"])
        assert states == {"1004": "Reachable", "1005": "Unavailable", "1099": "Unavailable"}, states


def options_of(name: str) -> AmiOptions:
    return getattr(SCENARIOS[name], "options", OPTIONS)


SCENARIOS: dict[str, Scenario] = {
    "agent_phone_never_answers": agent_phone_never_answers,
    "safe_harbour_played": safe_harbour_played,
    "machine_hears_leave_message": machine_hears_leave_message,
    "amd_person_and_machine": amd_person_and_machine,
    "national_dial_string": national_dial_string,
    "call_ids_never_collide": call_ids_never_collide,
    "bad_secret": bad_secret,
    "one_digit_agent_room": one_digit_agent_room,
    "outbound_outcomes": outbound_outcomes,
    "answered_into_agent_room": answered_into_agent_room,
    "recorded_call_muted_and_stopped": recorded_call_muted_and_stopped,
    "restart_is_told_from_a_failure": restart_is_told_from_a_failure,
    "sip_desk_phone_takes_the_agent_leg": sip_desk_phone_takes_the_agent_leg,
    "sip_customer_outcomes": sip_customer_outcomes,
    "sip_phone_states": sip_phone_states,
}


# --- scenarios over several AMI servers / connections: the traffic of server i's connection j is recorded as
# ``<name>.<i>.<j>.ami`` (from 1); the scenario is given the servers (their addresses: live, the recording proxies;
# on replay, the replay servers) and makes its own clients.

MultiScenario = Callable[[list[AmiServer], Pbx], Awaitable[None]]


async def crash(ami: AmiClient) -> None:
    """The engine process dies: its AMI socket is cut without a Logoff; Asterisk keeps every channel up."""
    ami._closing = True
    ami._up.clear()  # no Logoff
    if ami._manager is not None and ami._manager.protocol is not None:
        ami._manager.protocol.transport.abort()
    await ami.aclose()


async def recovered_after_engine_restart(servers: list[AmiServer], pbx: Pbx) -> None:
    """Real-Asterisk finding 12: an answered call talking to agent 3 in agent-3 when the engine dies; the next
    engine's client finds both in CoreShowChannels (``recover``): the call is tracked again (it ends with Ended)
    and the agent leg counts as joined, so the next login of agent 3 sends no Originate that would collide."""
    [server] = servers
    pbx("channel request hangup all")  # live: nothing left over from the scenarios before (a no-op on replay)
    await asyncio.sleep(0.5)
    first, second = AmiClient(server, OPTIONS), AmiClient(server, OPTIONS)
    call_id = attempt_call_id(31)
    await first.start()
    events = first.events().__aiter__()
    await first.agent_login("3", "Local/3@sim-agent-phones")
    assert isinstance(await next_of(events, (AgentJoined, AgentLeft)), AgentJoined)
    await first.originate(call_id, "90006", "95500", {}, timeout_s=10)
    assert isinstance(await next_of(events, (Answered, Failed)), Answered)
    await first.connect(call_id, "3")
    assert isinstance(await next_of(events, (Connected, Ended)), Connected)
    await crash(first)
    async with second:
        events = second.events().__aiter__()
        await second.recover()
        recovered = await next_of(events, (Recovered,))
        assert isinstance(recovered, Recovered) and recovered.server == second.name
        assert recovered.calls == (LiveCall(call_id, True, "3"),), recovered
        joined = await next_of(events, (AgentJoined,))
        assert isinstance(joined, AgentJoined) and joined.agent_id == "3" and joined.server == second.name
        await second.agent_login("3", "Local/3@sim-agent-phones")  # in its room already: no second Originate
        assert isinstance(await next_of(events, (AgentJoined,)), AgentJoined)
        await second.hangup(call_id)  # the customer's end, as the dialler's hang-up button does it
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == call_id, ended
        await second.agent_logout("3")
        left = await next_of(events, (AgentLeft,))
        assert isinstance(left, AgentLeft) and left.agent_id == "3"


async def two_servers_name_their_server(servers: list[AmiServer], pbx: Pbx) -> None:
    """Real-Asterisk finding 7, over two Asterisk servers in one AmiPool: agent 4's room is on A, agent 5's on B;
    a call answered on B says so (Answered.server), the pool refuses to move it into agent 4's room on A (no
    Redirect into an empty room there) and it hears the safe-harbour prompt; agent 5 on B takes the next one."""
    pool = AmiPool(servers, OPTIONS)
    a, b = pool.clients
    await pool.start()
    try:
        events = pool.events().__aiter__()
        await pool.agent_login("4", "Local/4@sim-agent-phones", server=a.name)
        joined = await next_of(events, (AgentJoined, AgentLeft))
        assert isinstance(joined, AgentJoined) and joined.server == a.name, joined
        first = attempt_call_id(41)
        await b.originate(first, "90006", "95500", {}, timeout_s=10)  # placed on B
        answered = await next_of(events, (Answered, Failed))
        assert isinstance(answered, Answered) and answered.server == b.name, answered
        with pytest.raises(TelephonyError):
            await pool.connect(first, "4")
        await pool.play(first, SAFE_HARBOUR_PROMPT)
        ended = await next_of(events, (Ended,))
        assert isinstance(ended, Ended) and ended.call_id == first and ended.talk_s is None
        await pool.agent_login("5", "Local/5@sim-agent-phones", server=b.name)
        joined = await next_of(events, (AgentJoined, AgentLeft))
        assert isinstance(joined, AgentJoined) and joined.agent_id == "5" and joined.server == b.name
        second = attempt_call_id(42)
        await b.originate(second, "90006", "95500", {}, timeout_s=10)
        assert isinstance(await next_of(events, (Answered, Failed)), Answered)
        await pool.connect(second, "5")
        connected = await next_of(events, (Connected, Ended))
        assert isinstance(connected, Connected) and connected.server == b.name, connected
        await pool.hangup(second)
        assert isinstance(await next_of(events, (Ended,)), Ended)
        for agent in ("4", "5"):
            await pool.agent_logout(agent)
            assert isinstance(await next_of(events, (AgentLeft,)), AgentLeft)
    finally:
        await pool.aclose()


# name -> (number of servers, connections per server, scenario)
MULTI_SCENARIOS: dict[str, tuple[int, int, MultiScenario]] = {
    "recovered_after_engine_restart": (1, 2, recovered_after_engine_restart),
    "two_servers_name_their_server": (2, 1, two_servers_name_their_server),
}


def multi_capture(name: str, server: int, connection: int) -> Path:
    return LIVE_CAPTURES / f"{name}.{server}.{connection}.ami"
