"""Pure tests of the AMI -> domain event mapping and of the port's input checks (no sockets)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiServer, mask
from callcenter.adapters.telephony.ami_events import CallTracker
from callcenter.adapters.telephony.ami_replay import parse_capture
from callcenter.ports.telephony import (
    AgentJoined,
    Answered,
    Connected,
    Ended,
    Failed,
    Ringing,
    ServerDown,
    check_number,
    check_text,
    check_variables,
)


def ev(name, **h):
    return {"Event": name, **h}


def tracker(*ids, amd=False):
    t = CallTracker("pbx1", settle_grace_s=5.0)
    t.connected(0.0)
    for call_id in ids:
        t.track(call_id, 0.0, 20, expect_amd=amd, action_id=f"a-{call_id}")
    return t


ANSWERED_FLOW = [
    ev("Newchannel", Channel="PJSIP/trunk-00000001", Uniqueid="c1"),
    ev("Newstate", Channel="PJSIP/trunk-00000001", ChannelState="5", Uniqueid="c1"),
    ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="c1", Channel="PJSIP/trunk-00000001"),
    ev("ConfbridgeStart", Conference="agent-7", BridgeUniqueid="b1"),
    ev("BridgeEnter", BridgeUniqueid="b1", Uniqueid="c1"),
    ev("ConfbridgeJoin", Conference="agent-7", BridgeUniqueid="b1", Uniqueid="c1"),
    ev("Hangup", Uniqueid="c1", Cause="16", **{"Cause-txt": "Normal Clearing"}),
]


def run(t, messages, start=1.0):
    out = []
    for i, m in enumerate(messages):
        out += t.feed(m, start + i)
    return out


def test_answered_connected_ended():
    t = tracker("c1")
    out = run(t, ANSWERED_FLOW)
    assert [type(e) for e in out] == [Ringing, Answered, Connected, Ended]
    assert out[2].agent_id == "7"
    assert out[3] == Ended("c1", 7.0, 16, "Normal Clearing", talk_s=2.0)
    assert t.in_flight() == set()


def test_duplicates_change_nothing():
    t = tracker("c1")
    doubled = [m for m in ANSWERED_FLOW for _ in range(2)]
    out = run(t, doubled)
    assert [type(e) for e in out] == [Ringing, Answered, Connected, Ended]
    assert run(t, ANSWERED_FLOW) == []  # a full late replay after the end: nothing


def test_reordered_hangup_before_originate_response_is_held_then_settled():
    # real order for a busy line: our leg hangs up (cause 0), the other half says 17, then Reason 5
    t = tracker("c2")
    assert t.feed(ev("Hangup", Uniqueid="c2", Cause="0"), 1.0) == []
    assert t.feed(ev("Hangup", Uniqueid="c2;2", Cause="17"), 1.1) == []
    assert t.feed(ev("OriginateResponse", Response="Failure", Reason="5", Uniqueid="c2"), 1.2) == [
        Failed("c2", 1.2, "busy", 17)
    ]


def test_lost_originate_response_settled_by_channel_id():
    t = tracker("c3")
    t.feed(ev("Hangup", Uniqueid="c3", Cause="19"), 10.0)
    assert t.tick(14.9) == []
    assert t.tick(15.0) == [Failed("c3", 15.0, "no_answer", 19)]
    # the response turns up after all: ignored
    assert t.feed(ev("OriginateResponse", Response="Failure", Reason="3", Uniqueid="c3"), 16.0) == []


def test_originate_response_found_by_action_id_when_uniqueid_missing():
    t = tracker("c4")
    out = t.feed(ev("OriginateResponse", Response="Failure", Reason="8", ActionID="a-c4"), 1.0)
    assert out == [Failed("c4", 1.0, "congestion", None)]


def test_unexplained_failure_waits_for_the_legs_hang_up_cause():
    """Asterisk 22 over PJSIP (tests/fixtures/asterisk-22-live/sip_customer_outcomes.ami): a 503 is OriginateResponse
    Reason 0, sent before the leg's Hangup that says Cause 34; a 486 likewise with Cause 17."""
    t = tracker("c")
    t.feed(ev("Newchannel", Uniqueid="c", Channel="PJSIP/sim-sip-customer-00000002"), 0.5)
    assert t.feed(ev("OriginateResponse", Response="Failure", Reason="0", Uniqueid="c"), 1.0) == []
    assert t.feed(ev("Hangup", Uniqueid="c", Cause="34", **{"Cause-txt": "Normal circuit congestion"}), 1.1) == [
        Failed("c", 1.1, "congestion", 34)]
    assert t.tick(10.0) == []
    busy = tracker("b")
    assert busy.feed(ev("Hangup", Uniqueid="b", Cause="17"), 1.0) == []  # the other order: the cause is known
    assert busy.feed(ev("OriginateResponse", Response="Failure", Reason="0", Uniqueid="b"), 1.1) == [
        Failed("b", 1.1, "busy", 17)]


def test_unexplained_failure_without_a_hang_up_is_an_error_after_the_grace():
    t = tracker("c")
    t.feed(ev("Newchannel", Uniqueid="c", Channel="PJSIP/trunk-00000001"), 0.5)
    assert t.feed(ev("OriginateResponse", Response="Failure", Reason="0", Uniqueid="c"), 1.0) == []
    assert t.tick(5.9) == []
    assert t.tick(6.0) == [Failed("c", 6.0, "error", None)]


@pytest.mark.parametrize(
    "reason,expected", [("0", "error"), ("1", "no_answer"), ("3", "no_answer"), ("5", "busy"), ("8", "congestion")]
)
def test_originate_reasons(reason, expected):
    t = tracker("c")
    out = t.feed(ev("OriginateResponse", Response="Failure", Reason=reason, Uniqueid="c"), 1.0)
    assert [(type(e), e.reason) for e in out] == [(Failed, expected)]


def test_amd_user_event_reports_answer_once_even_if_before_originate_response():
    t = tracker("c5", amd=True)
    out = t.feed(
        ev("UserEvent", UserEvent="CallAnswered", Uniqueid="c5", AMDStatus="MACHINE", AMDCause="LONGGREETING-1500-1500"),
        2.0,
    )
    assert out == [Answered("c5", 2.0, "machine", "LONGGREETING-1500-1500", server="pbx1")]
    assert t.feed(ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="c5"), 2.5) == []
    assert t.feed(ev("UserEvent", UserEvent="CallAnswered", Uniqueid="c5", AMDStatus="HUMAN"), 3.0) == []


def test_amd_hangup_before_report_still_gives_answered_then_ended():
    t = tracker("c6", amd=True)
    assert t.feed(ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="c6"), 1.0) == []
    out = t.feed(ev("Hangup", Uniqueid="c6", Cause="16"), 2.0)
    assert [type(e) for e in out] == [Answered, Ended] and out[0].amd is None


def test_shutdown_ends_everything_and_reports_server_down():
    t = tracker("up", "ringing")
    t.feed(ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="up"), 1.0)
    t.track_agent("9")
    out = t.feed(ev("Shutdown", Shutdown="Cleanly", Restart="True"), 2.0)
    assert out[0] == ServerDown("pbx1", 2.0, "restart")
    assert {type(e).__name__ for e in out[1:]} == {"Ended", "Failed", "AgentLeft"}
    assert t.in_flight() == set()
    assert t.feed(ev("Shutdown"), 3.0) == []


def test_calls_not_yet_answered_are_lost_when_the_server_goes_away():
    t = tracker("ringing", "busy-seen")
    t.feed(ev("Hangup", Uniqueid="busy-seen", Cause="17"), 1.0)  # its own cause is known: it stays "busy"
    out = t.feed(ev("Shutdown", Shutdown="Cleanly", Restart="True"), 2.0)
    failed = {e.call_id: e.reason for e in out if isinstance(e, Failed)}
    assert failed == {"ringing": "lost", "busy-seen": "busy"}
    t2 = tracker("gone")
    t2.connection_lost(1.0)
    [gone] = t2.reconcile([], 2.0)
    assert isinstance(gone, Failed) and gone.reason == "lost"


def test_reconcile_after_connection_loss():
    t = tracker("alive", "gone", "gone-answered")
    t.feed(ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="gone-answered"), 1.0)
    assert [type(e) for e in t.connection_lost(2.0)] == [ServerDown]
    t.track("new", 3.0, 20)  # placed after the reconnect: not part of this reconcile
    out = t.reconcile([{"Event": "CoreShowChannel", "Uniqueid": "alive", "Channel": "PJSIP/x-1"}], 4.0)
    assert sorted((type(e).__name__, e.call_id) for e in out) == [
        ("Ended", "gone-answered"),
        ("Failed", "gone"),
    ]
    assert t.in_flight() == {"alive", "new"}
    assert t.channel_of("alive") == "PJSIP/x-1"


def test_agent_leg_join_and_messages_that_are_not_ours():
    t = tracker()
    t.track_agent("1001")
    out = run(
        t,
        [
            ev("ConfbridgeJoin", Conference="agent-1001", BridgeUniqueid="b", Uniqueid="agent-1001-leg2"),
            ev("ConfbridgeJoin", Conference="agent-1001", BridgeUniqueid="b", Uniqueid="agent-1001-leg2"),
            ev("Hangup", Uniqueid="someone-else", Cause="16"),
            ev("OriginateResponse", Reason="4", Uniqueid="someone-else"),
        ],
    )
    assert out == [AgentJoined("1001", 1.0, server="pbx1")]


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"Event": ""},
        {"Event": "Hangup"},
        {"Event": "Hangup", "Uniqueid": "c1", "Cause": "not-a-number"},
        {"Event": "OriginateResponse", "Uniqueid": "zz", "Reason": "99999999999"},
        {"Event": ["Hangup", "Hangup"], "Uniqueid": ["c1", "x"]},
        {"Event": "UserEvent", "UserEvent": "CallAnswered", "Uniqueid": "c1", "AMDStatus": "\x00weird"},
        {1: 2, "Event": None},
    ],
)
def test_malformed_messages_do_not_break_the_machine(message):
    t = tracker("c1")
    t.feed(message, 1.0)  # never raises
    out = run(t, ANSWERED_FLOW, start=2.0)
    assert isinstance(out[-1], Ended)


@settings(max_examples=200, deadline=None)
@given(
    st.permutations(ANSWERED_FLOW),
    st.lists(st.sampled_from(ANSWERED_FLOW), max_size=6),
)
def test_any_order_and_duplicates_give_exactly_one_terminal_event(order, extra):
    t = tracker("c1")
    out = run(t, list(order) + extra)
    out += t.tick(1e9)
    assert sum(isinstance(e, (Failed, Ended)) for e in out) <= 1
    assert sum(isinstance(e, Answered) for e in out) <= 1
    t.connection_lost(1e9)
    out += t.reconcile([], 1e9)
    assert sum(isinstance(e, (Failed, Ended)) for e in out) == 1
    assert t.in_flight() == set()


def test_panoramisk_framing_of_malformed_bytes_keeps_the_reader_alive():
    # parse_capture keeps the bytes verbatim: garbage lines and an empty frame go straight through
    cap = parse_capture(b"Asterisk Call Manager/11.0.0\r\nno colon here\r\n\r\n\r\n\r\nEvent: Ping\r\n\r\n")
    assert cap.opening.startswith(b"no colon here")


# --- AMI injection: nothing with CR/LF reaches a header -------------------------------------


@pytest.mark.parametrize(
    "number", ["", "12", "1380000000a", "138 0000 0001", "1380000\r\nAction: Command", "+", "++8613800000001"]
)
def test_numbers_refused(number):
    with pytest.raises(ValueError):
        check_number(number)


def test_numbers_accepted():
    assert check_number("+8613800000001") == "+8613800000001"
    assert check_number("02155551234") == "02155551234"


@pytest.mark.parametrize("value", ["x\r\nAction: Command\r\nCommand: core restart now", "a\nb", "a\rb", "a\x00b"])
def test_crlf_refused_in_text_and_variables(value):
    with pytest.raises(ValueError):
        check_text(value)
    with pytest.raises(ValueError):
        check_variables({"CC_CLIENT_ID": value})


def test_bad_variable_names_refused():
    for name in ["", "1X", "A=B", "A B", "A\r\nAction"]:
        with pytest.raises(ValueError):
            check_variables({name: "x"})


async def test_adapter_refuses_injection_before_anything_is_sent():
    client = AmiClient(AmiServer("127.0.0.1", 1, "u", "s"), AmiOptions())
    bad = [
        ("c1", "13800000001", "95555\r\nAction: Command", {}),
        ("c1", "13800000001", "95555", {"CC_IVR_SUMMARY": "ok\r\n\r\nAction: Hangup"}),
        ("c1\r\nAction: Hangup", "13800000001", "95555", {}),
        ("c1", "138\r\n00000001", "95555", {}),
    ]
    for call_id, number, cid, variables in bad:
        with pytest.raises(ValueError):
            await client.originate(call_id, number, cid, variables, 20)
    with pytest.raises(ValueError):
        await client.agent_login("1001", "PJSIP/1001\r\nAction: Command")
    with pytest.raises(ValueError):
        await client.connect("c1", "1001\r\nAction: Command")
    await asyncio.sleep(0)
    assert client.tracker.in_flight() == set()


def test_logs_are_masked():
    text = mask("Action: Login\r\nSecret: hunter2\r\nChannel: PJSIP/13800000001@trunk\r\nVariable: CC_CLIENT_ID=42")
    assert "hunter2" not in text and "13800000001" not in text and "CC_CLIENT_ID=42" not in text


def test_recover_takes_over_a_previous_processs_calls_and_agent_legs():
    """Real-Asterisk finding 12: what a CoreShowChannels list (fields as Asterisk 22 sends them) shows of ours
    that this process did not place: the talking call and the agent leg in its room are tracked from now on,
    a leg outside its room is to be hung up, other channels (Asterisk's, the Local halves) are left alone."""
    from callcenter.ports.telephony import AgentLeft, LiveCall, Recovered

    t = tracker()
    channels = [
        ev("CoreShowChannel", Channel="Local/90006@sim-customers-00000004;1", Uniqueid="cc-000000000017",
           ChannelState="6", Application="ConfBridge", ApplicationData="agent-4,cc_agent_bridge,cc_customer_user"),
        ev("CoreShowChannel", Channel="Local/90006@sim-customers-00000004;2", Uniqueid="cc-000000000017;2",
           ChannelState="6", Application="Wait", ApplicationData="60"),
        ev("CoreShowChannel", Channel="Local/90001@sim-customers-00000005;1", Uniqueid="cc-000000000018",
           ChannelState="6", Application="Wait", ApplicationData="30"),
        ev("CoreShowChannel", Channel="Local/4@sim-agent-phones-00000001;1", Uniqueid="agent-4-leg",
           ChannelState="6", Application="ConfBridge", ApplicationData="agent-4,cc_agent_bridge,cc_agent_user"),
        ev("CoreShowChannel", Channel="Local/5@sim-agent-phones-00000002;1", Uniqueid="agent-5-leg",
           ChannelState="5", Application="AppDial", ApplicationData="(Outgoing Line)"),
        ev("CoreShowChannel", Channel="Local/s@sim-caller-00000003;1", Uniqueid="1764640000.12",
           ChannelState="6", Application="AGI", ApplicationData="agi://127.0.0.1:4573/hotline"),
    ]
    out, orphans = t.recover(channels, 5.0)
    assert out == [Recovered("pbx1", 5.0, (LiveCall("cc-000000000017", True, "4"), LiveCall("cc-000000000018", True))),
                   AgentJoined("4", 5.0, server="pbx1")]
    assert orphans == ["Local/5@sim-agent-phones-00000002;1"]
    assert t.recover(channels, 6.0) == ([], ["Local/5@sim-agent-phones-00000002;1"])  # known now: once only
    assert t.channel_of("cc-000000000017") == "Local/90006@sim-customers-00000004;1" and t.agent_joined("4")
    ended = t.feed(ev("Hangup", Uniqueid="cc-000000000017", Cause="16", **{"Cause-txt": "Normal Clearing"}), 9.0)
    assert ended == [Ended("cc-000000000017", 9.0, 16, "Normal Clearing", None)]  # talk time: the dialler's record
    left = t.feed(ev("Hangup", Uniqueid="agent-4-leg", Cause="16"), 9.5)
    assert left == [AgentLeft("4", 9.5, 16, server="pbx1")]


def test_notify_menu_key_is_a_digit_pressed_of_that_call():
    """[cc-notify-menu] raises UserEvent NotifyDigit with the key a notification call's client pressed."""
    from callcenter.ports.telephony import DigitPressed

    t = tracker("care-5-1")
    run(t, [ev("Newchannel", Channel="PJSIP/trunk-00000005", Uniqueid="care-5-1"),
            ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="care-5-1",
               Channel="PJSIP/trunk-00000005")])
    key = ev("UserEvent", UserEvent="NotifyDigit", Uniqueid="care-5-1", CallID="care-5-1", Digit="1")
    assert t.feed(key, 5.0) == [DigitPressed("care-5-1", 5.0, "1")]
    assert t.feed(dict(key, Digit="12"), 6.0) == [] and t.feed(dict(key, Uniqueid="x", CallID="nobody"), 6.0) == []


def test_a_notification_call_handed_to_an_agent_goes_on_under_the_hand_offs_id():
    """The client pressed 0: ``reassign`` renames the call; nothing more under the old id; the dialplan's
    HandoffWaiting of the new id (the channel, still known by its Uniqueid, waits in [cc-handoff-wait]) reports
    it Answered once, its ConfbridgeJoin Connected and its hang-up Ended -- as an IVR hand-off's caller."""
    from callcenter.ports.channel_variables import handoff_call_id
    from callcenter.ports.telephony import Answered, Connected, Ended

    H1 = handoff_call_id(1)

    t = tracker("care-5-1")
    chan = "Local/13900000001@sim-notified-00000003;1"
    run(t, [ev("Newchannel", Channel=chan, Uniqueid="care-5-1"),
            ev("OriginateResponse", Response="Success", Reason="4", Uniqueid="care-5-1", Channel=chan)])
    assert not t.reassign("nobody", H1) and t.reassign("care-5-1", H1)
    assert not t.reassign("care-5-1", handoff_call_id(2))  # once
    assert t.channel_of(H1) == chan and not t.is_live("care-5-1")
    key = ev("UserEvent", UserEvent="NotifyDigit", Uniqueid="care-5-1", CallID="care-5-1", Digit="0")
    assert t.feed(key, 5.0) == []  # a late key of the old id
    waiting = ev("UserEvent", UserEvent="HandoffWaiting", Uniqueid="care-5-1", Channel=chan, CallID=H1)
    assert t.feed(waiting, 6.0) == [Answered(H1, 6.0, None, None, server="pbx1")]
    assert t.feed(waiting, 10.0) == []  # the dialplan's repeat
    joined = ev("ConfbridgeJoin", Conference="agent-4", BridgeUniqueid="b1", Uniqueid="care-5-1", Channel=chan)
    assert t.feed(joined, 11.0) == [Connected(H1, 11.0, "4", server="pbx1")]
    assert t.feed(ev("Hangup", Uniqueid="care-5-1;2", Cause="16"), 20.0) == []  # the other half: a hint
    assert t.feed(ev("Hangup", Uniqueid="care-5-1", Cause="16", **{"Cause-txt": "Normal Clearing"}), 20.0) == [
        Ended(H1, 20.0, 16, "Normal Clearing", 9.0)]
    assert t.in_flight() == set()


def test_headers_of_a_panoramisk_message_are_those_of_its_plain_mapping() -> None:
    """``headers`` reads a panoramisk message's own store (not the Mapping ABC): same result as any mapping."""
    from panoramisk.message import Message

    from callcenter.adapters.telephony.ami_events import headers

    fields = {"Event": "Hangup", "Channel": "Local/1@x-00000001;1", "Uniqueid": "cc-1", "Cause": "16",
              "ChanVariable": ["CC_ATTEMPT=1", "CC_OTHER=2"], "Empty": [], "Number": 5}
    message = Message(fields)
    expected = {"event": "Hangup", "channel": "Local/1@x-00000001;1", "uniqueid": "cc-1", "cause": "16",
                "chanvariable": "CC_ATTEMPT=1", "content": ""}
    assert headers(message) == expected == headers(dict(message.items()))
    assert headers({"EVENT": "Hangup", "event": "other", 3: "x"}) == {"event": "Hangup"}  # first value kept
