"""FastAGI adapter over real TCP on 127.0.0.1, with a fake Asterisk speaking as the capture does."""

import asyncio
from pathlib import Path

import pytest

from callcenter.adapters.ivr.agi import AgiChannel, AgiConfig, AgiHangup, agi_quote, caller_number, parse_result, start_agi_server
from callcenter.services.ivr.backend import demo_backend
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22" / "fastagi_session.agi"
ACCOUNT, PIN = "1234567890123456", "123456"
LOGIN = ["1", ACCOUNT, PIN]


@pytest.fixture
def backend():
    return demo_backend()


@pytest.fixture
async def agi(backend):
    server, app = await start_agi_server(backend, "127.0.0.1", 0,
                                         config=AgiConfig(prompts_dir=Path("/p"), render_text=lambda t, l: "bulletin"))
    port = server.sockets[0].getsockname()[1]

    async def place(inputs, **kw):
        call = await run_fake_call("127.0.0.1", port, FakeCall(list(inputs), **kw))
        await app.wait_idle()  # the server side of the call has finished too
        return call

    async with server:
        yield place


def test_parse_every_answer_form_in_the_capture():
    answers = [line.split("] ", 1)[1] for line in CAPTURE.read_text().splitlines() if line.startswith("<<< [")]
    parsed = [parse_result(a) for a in answers if a != "HANGUP"]
    assert [p.code for p in parsed].count(510) == 1 and parsed[-1].code == 511
    assert parse_result("200 result=123456").result == "123456"
    timeout = parse_result("200 result= (timeout)")
    assert timeout.result == "" and timeout.timed_out
    assert parse_result("200 result=12 (timeout)").result == "12"
    assert parse_result("200 result=0 endpos=11234").endpos == 11234
    assert parse_result("200 result=-1 endpos=0").result == "-1"
    assert parse_result("200 result=1 (13912345678)").data == "13912345678"


def test_values_reaching_agi_are_sanitised():
    assert agi_quote('a"b\r\nHANGUP\\') == '"a\\"b  HANGUP\\\\"'
    assert caller_number("13912345678\r\nEXEC System rm") == "13912345678"
    assert caller_number("unknown") == "" and caller_number("+86 139") == "+86139"


async def test_capture_replayed_line_by_line_through_agi_channel():
    """Play Asterisk's side of the capture against AgiChannel: every answer form, HANGUP then 511."""
    lines = CAPTURE.read_text().splitlines()
    exchanges: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith(">>> "):
            exchanges.append((line[4:], []))
        elif line.startswith("<<< [") and exchanges:
            exchanges[-1][1].append(line.split("] ", 1)[1])
        elif line == "<<< HANGUP" and exchanges:
            exchanges[-1][1].append("HANGUP")

    async def asterisk(reader, writer):
        for command, answers in exchanges:
            got = (await reader.readline()).decode().rstrip("\n")
            assert got == command
            for answer in answers:
                writer.write(answer.encode() + b"\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(asterisk, "127.0.0.1", 0)
    async with server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        channel = AgiChannel(reader, writer)
        results = []
        with pytest.raises(AgiHangup):
            for command, _ in exchanges:
                results.append(await channel.command(command))
        writer.close()
        await writer.wait_closed()
    assert results[2].result == "123456"
    assert results[9].timed_out and results[13].code == 510 and results[14].result == "-1"
    assert channel.hung_up and len(results) == len(exchanges) - 1


async def test_login_and_balance_query(agi, backend):
    call = await agi(LOGIN + ["1"])
    cmds = [c for c, _ in call.transcript]
    assert cmds[0] == "ANSWER"
    assert cmds[1] == 'STREAM FILE cc/zh-CN/welcome "0123456789*#"'
    assert cmds[2] == "GET DATA cc/zh-CN/choose_language 5000 1"
    assert 'SET VARIABLE CHANNEL(language) "zh"' in cmds
    assert "GET DATA cc/zh-CN/enter_pin 10000 7" in cmds
    assert account_tail_read(cmds) == list("3456") and not [c for c in cmds if c.startswith("SAY DIGITS")]
    after = cmds[next(i for i, c in enumerate(cmds) if "/available" in c):]  # 可用资金 ...
    amount = [c.split()[2].rsplit("/", 1)[1] for c in after if "/num_" in c][:12]
    assert amount == ["num_d1", "num_wan", "num_d2", "num_qian", "num_d3", "num_bai", "num_d4", "num_shi",
                      "num_d5", "num_yuan", "num_d6", "num_jiao"]
    # the caller hung up during the next GET DATA: 200 result=-1; nothing is sent after it
    assert call.transcript[-1] == ("GET DATA cc/zh-CN/after_info 8000 1", "200 result=-1")
    (call_id,) = {cid for cid, s, d in backend.events if s == "start" and d["asterisk_uniqueid"] == "ivr-test-3"}
    steps = [(s, d) for cid, s, d in backend.events if cid == call_id]
    assert steps[0] == ("start", {"caller": "139****5678", "lang": "zh-CN", "flow": "hotline",
                                  "asterisk_uniqueid": "ivr-test-3",
                                  "asterisk_channel": "Local/123456@sim-caller-00000006;1"})
    assert steps[-1][0] == "end" and steps[-1][1]["reason"] == "caller_hangup"
    assert "duration_s" in steps[-1][1]
    # (the fake's channel name "Local/123456@..." happens to contain the PIN's digits)
    assert all(PIN not in str({k: v for k, v in d.items() if k != "asterisk_channel"})
               for _, d in steps if d.get("action") != "authenticate")


async def test_timeouts_and_partial_digits(agi):
    call = await agi(["w", "w", "w:1234567", "w", "w", "w"])
    answers = [a for _, a in call.transcript]
    assert "200 result= (timeout)" in answers and "200 result=1234567 (timeout)" in answers
    assert call.commands("GET DATA cc/zh-CN/enter_pin")  # 7 digits then silence were accepted as the account
    assert call.transcript[-1][0] == "HANGUP"  # no_input -> the IVR hangs up itself


async def test_hangup_then_511_ends_the_session(agi, backend):
    call = await agi(["1", "hangup"])
    assert call.transcript[-1][1] == "200 result=-1"
    assert call.closed_by_server
    end = [d for cid, s, d in backend.events if s == "end"][0]
    assert end["reason"] == "caller_hangup"


async def test_unsolicited_hangup_line_then_511(backend):
    """Asterisk sends 'HANGUP' then '511' to the next command: the call ends cleanly."""
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=AgiConfig(prompts_dir=Path("/p")))
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"agi_network: yes\nagi_network_script: hotline\nagi_uniqueid: u-1\nagi_callerid: 1\n\n")
        assert (await reader.readline()) == b"ANSWER\n"
        writer.write(b"200 result=0\n")
        assert (await reader.readline()).startswith(b"STREAM FILE")
        writer.write(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
        assert await reader.read() == b""  # server closed without another command
        writer.close()
        await writer.wait_closed()
        await app.wait_idle()
    assert [d["reason"] for _, s, d in backend.events if s == "end"] == ["caller_hangup"]


async def test_unknown_route_is_closed(agi):
    call = await agi(["1"], script="nosuchflow")
    assert call.transcript == [] and call.closed_by_server


async def test_handoff_sets_channel_variables_and_returns_to_dialplan(agi):
    call = await agi(LOGIN + ["0"])
    assert call.variables["CC_HANDOFF"] == "1"
    assert call.variables["CC_CLIENT_ID"] == "C-1001"
    assert call.variables["CC_IVR_SUMMARY"].startswith("lang=zh-CN;auth=ok;account=1234****3456")
    assert call.closed_by_server and not call.commands("HANGUP")
    assert "CC_CALL_ID" not in call.variables  # no call record: nobody can route it (the dialplan says sorry)


async def test_handoff_with_a_call_record_parks_the_caller_under_its_hand_off_call_id(agi, backend):
    """A backend that keeps call records (the store's) gives the hand-off's record id: the dialplan gets
    ``CC_CALL_ID`` = ``cc-h<id>`` (the engine's id of the inbound call), the language and its own wait bound."""
    recorded = backend.record_event

    def record_event(call_id, step, detail):
        recorded(call_id, step, detail)
        return 42 if step == "handoff" else 7

    backend.record_event = record_event
    call = await agi(LOGIN + ["0"])
    assert call.variables["CC_CALL_ID"] == "cc-h000000000042"
    assert (call.variables["CC_LANG"], call.variables["CC_HANDOFF_WAIT_S"]) == ("zh-CN", "150")
    assert call.variables["CC_HANDOFF"] == "1" and call.closed_by_server and not call.commands("HANGUP")
    names = [c.split()[2] for c, _ in call.transcript if c.startswith("SET VARIABLE")]
    assert names.index("CC_CALL_ID") < names.index("CC_HANDOFF")  # set before the dialplan is told to park


async def test_wrong_pins_end_the_call(agi, backend):
    call = await agi(["1"] + [ACCOUNT, "000000"] * 3)
    assert call.transcript[-1][0] == "HANGUP"
    assert backend.failures[ACCOUNT] == 3


TRANSFER = LOGIN + ["3", "1", "2", "1000*5"]


@pytest.mark.parametrize("cut", range(len(TRANSFER) - 3, len(TRANSFER) + 1))
async def test_hangup_at_each_transfer_step_moves_no_money(agi, backend, cut):
    await agi(TRANSFER[:cut] + ["hangup"])
    assert backend.transfers == []


async def test_cancel_moves_no_money(agi, backend):
    await agi(TRANSFER + ["2"])
    assert backend.transfers == []


async def test_hangup_right_after_confirm_completes_once(agi, backend):
    call = await agi(TRANSFER + ["1", "hangup"])
    assert len(backend.transfers) == 1 and backend.transfers[0].amount_fen == 100050
    assert any(s == "do_transfer" and d["outcome"] == "ok" for _, s, d in backend.events)


async def test_connection_dropped_after_confirm_completes_once(agi, backend):
    # the caller's "1" arrives, then the TCP connection drops before anything else is said
    call = await agi(TRANSFER + ["1", "drop"])
    assert len(backend.transfers) == 1
    end = [d for _, s, d in backend.events if s == "end"][0]
    assert end["reason"] == "connection_lost"
    # a later session on the same channel (same agi_uniqueid) is another call: the caller confirmed again, so it
    # makes its own transfer (hardening finding 4: it used to reuse the first call's key and hear its reference)
    await agi(TRANSFER + ["1", "hangup"])
    assert len(backend.transfers) == 2 and len({t.idempotency_key for t in backend.transfers}) == 2


async def test_hundreds_of_concurrent_calls(agi, backend):
    calls = await asyncio.gather(*(agi(LOGIN + ["1"], uniqueid=f"c-{i}") for i in range(300)))
    assert all(account_tail_read([cmd for cmd, _ in c.transcript]) == list("3456") for c in calls)
    assert len({cid for cid, s, _ in backend.events if s == "end"}) == 300


async def test_bulletin_free_text_is_played_from_rendered_file(agi):
    call = await agi(LOGIN + ["4"])
    assert 'STREAM FILE cc/zh-CN/bulletin "0123456789*#"' in [c for c, _ in call.transcript]


def account_tail_read(cmds: list[str]) -> list[str]:
    """The digits read after "尾号": in Chinese our own rendered digits (Asterisk has none; SAY DIGITS would
    read them in English), as STREAM FILE cc/zh-CN/num_d<digit>."""
    start = next(i for i, c in enumerate(cmds) if "/account_tail" in c) + 1
    return [c.split()[2].rsplit("num_d", 1)[1] for c in cmds[start:start + 4] if "/num_d" in c]
