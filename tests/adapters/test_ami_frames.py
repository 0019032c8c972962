"""AMI framing (hardening finding 11): a malformed frame is skipped and logged, and the real event after it is
delivered, whatever the read boundaries. Byte literals; the real event is copied from originate_outcomes.ami."""

from __future__ import annotations

import logging

import pytest

from callcenter.adapters.telephony.ami import _SafeProtocol
from callcenter.adapters.telephony.ami_frames import Frame, FrameParser, Malformed, parse_frame
from fake_ami import load_capture

# Verbatim from tests/fixtures/asterisk-22/originate_outcomes.ami: the congested call's OriginateResponse.
REAL_EVENT = (
    b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: orig-13800000004\r\nResponse: Failure\r\n"
    b"Channel: Local/13800000004@sim-customers\r\nContext: cc-outbound\r\nExten: s\r\nReason: 8\r\n"
    b"Uniqueid: cc-13800000004\r\nCallerIDNum: 95555\r\nCallerIDName: 95555\r\n\r\n"
)

MALFORMED = {
    "repeated ActionID": b"Response: Success\r\nActionID: a1\r\nActionID: a2\r\n\r\n",
    "repeated Event": b"Event: Hangup\r\nEvent: Newstate\r\nUniqueid: cc-1\r\n\r\n",
    "no header": b"\x00\xff\xfegarbage without a colon\r\n\r\n",
    "no Event": b"Uniqueid: cc-13800000004\r\nCause: 16\r\n\r\n",
    "CallerID with a number": b"Event: Hangup\r\nCallerIDNum: 13800000001\r\nbroken line 13800000001\r\n\r\n",
}


def test_frames_are_cut_at_boundaries_and_the_leftover_is_kept():
    parser = FrameParser()
    assert parser.feed(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: l1\r\n") == []
    assert parser.banner == "11.0.0"
    [frame] = parser.feed(b"Message: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nStat")
    assert frame == Frame({"Response": "Success", "ActionID": "l1", "Message": "Authentication accepted"})
    [booted] = parser.feed(b"us: Fully Booted\r\n\r\n")
    assert booted == Frame({"Event": "FullyBooted", "Status": "Fully Booted"})


def test_repeated_headers_become_a_list_and_empty_values_stay():
    frame = parse_frame(b"Event: AgentConnect\r\nChanVariable: CC_CLIENT_ID=7\r\nChanVariable: CC_CALL_ID=x\r\n"
                        b"AccountCode: \r\nCallerIDName: \xe5\xae\xa2\xe6\x88\xb7")
    assert frame == Frame({"Event": "AgentConnect", "ChanVariable": ["CC_CLIENT_ID=7", "CC_CALL_ID=x"],
                           "AccountCode": "", "CallerIDName": "客户"})


def test_a_character_split_across_two_reads_survives():
    data = b"Event: Newchannel\r\nCallerIDName: \xe5\xae\xa2\xe6\x88\xb7\r\n\r\n"
    parser = FrameParser()
    out = parser.feed(data[:35]) + parser.feed(data[35:])
    assert out == [Frame({"Event": "Newchannel", "CallerIDName": "客户"})]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_parser_skips_a_malformed_frame_and_keeps_the_event_after_it(kind):
    data = MALFORMED[kind] + REAL_EVENT
    for cut in range(0, len(data) + 1, 7):  # every read boundary, including inside either frame
        parser = FrameParser()
        out = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert [type(f) for f in out] == [Malformed, Frame], cut
        assert out[1].headers["Reason"] == "8" and out[1].headers["Uniqueid"] == "cc-13800000004"


def test_an_oversized_frame_is_given_up_and_reading_resynchronises():
    parser = FrameParser(max_frame=1024)
    out = parser.feed(b"Event: Flood\r\nJunk: " + b"x" * 3000)
    assert [type(f) for f in out] == [Malformed]
    out = parser.feed(b"y" * 5000)  # still the same frame: dropped, and nothing buffered beyond a few bytes
    assert out == [] and len(parser._buffer) < 8
    out = parser.feed(b"z\r\n\r\n" + REAL_EVENT)
    assert [type(f) for f in out] == [Frame] and out[0].headers["Reason"] == "8"


def test_command_output_is_content_not_malformed():
    frame = parse_frame(b"Response: Follows\r\nPrivilege: Command\r\nline one\r\n--END COMMAND--")
    assert isinstance(frame, Frame) and frame.headers["Response"] == "Follows"
    assert frame.content == "line one\n--END COMMAND--"


# --- the connection's reader: what panoramisk dispatches -------------------------------------------------


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Factory:
    forgetable_actions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.awaiting_actions: list[object] = []

    def dispatch(self, message) -> None:  # type: ignore[no-untyped-def]
        self.events.append(dict(message))

    def connection_lost(self, exc: object) -> None:
        pass


def reader() -> tuple[_SafeProtocol, _Factory]:
    protocol = _SafeProtocol()
    protocol.connection_made(_Transport())
    factory = _Factory()
    protocol.factory = factory
    protocol.encoding = "utf8"
    return protocol, factory


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_reader_delivers_the_real_event_after_a_malformed_frame(kind, caplog):
    for split in (None, len(MALFORMED[kind]) + 20):  # both in one read, and the real event cut in two
        protocol, factory = reader()
        data = MALFORMED[kind] + REAL_EVENT
        with caplog.at_level(logging.WARNING, logger="callcenter.adapters.telephony.ami"):
            if split is None:
                protocol.data_received(data)
            else:
                protocol.data_received(data[:split])
                protocol.data_received(data[split:])
        delivered = [e for e in factory.events if e.get("Event") == "OriginateResponse"]
        assert len(delivered) == 1 and delivered[0]["Reason"] == "8", (kind, split)
        assert protocol.malformed == 1
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert logged and all("13800000001" not in line for line in logged)  # masked


def test_reader_delivers_every_event_of_a_capture_with_garbage_at_every_boundary():
    cap = load_capture("originate_outcomes")
    server = cap.server_bytes()
    frames = [f for f in server.split(b"\r\n\r\n") if f.strip(b"\r\n")]
    garbage = MALFORMED["repeated ActionID"]
    protocol, factory = reader()
    clean, _ = reader()
    protocol.data_received(garbage.join(f + b"\r\n\r\n" for f in frames))
    clean.data_received(server)
    events = [e for e in factory.events]
    assert len(events) == len(clean.factory.events) > 50
    assert events == clean.factory.events
