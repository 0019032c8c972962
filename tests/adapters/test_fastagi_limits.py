"""FastAGI hardening over real loopback sockets (issue 11 findings 4, 8 and 12; issue 12 item 10).

Call ids unique by construction, a deadline for the whole AGI header, an idle timeout for each reply, a
connection cap, a call record for every session (also one that ends in a protocol error or a timeout), a
"please wait" prompt while the PIN check runs and the keys typed meanwhile kept for the next question."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from tests.adapters.test_fastagi import account_tail_read

from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.services.ivr.backend import demo_backend
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call

ACCOUNT, PIN = "1234567890123456", "123456"
LOGIN = ["1", ACCOUNT, PIN]
TRANSFER = LOGIN + ["3", "1", "2", "1000*5", "1", "hangup"]
BOUND_S = 5.0  # upper bound for anything the server must do "soon"


def make_config(**kw) -> AgiConfig:  # type: ignore[no-untyped-def]
    return AgiConfig(prompts_dir=Path("/p"), **kw)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True when the server closed the connection (EOF, or a reset because our header was left unread)."""
    try:
        return await asyncio.wait_for(reader.read(), BOUND_S) == b""
    except ConnectionResetError:
        return True


def ends(backend) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {cid: d for cid, s, d in backend.events if s == "end"}


# --- finding 4: call ids ----------------------------------------------------------------------
@pytest.mark.parametrize("uniqueid", ["1764612345.42", ""])
async def test_two_sessions_with_the_same_or_no_uniqueid_each_make_their_own_transfer(uniqueid: str) -> None:
    backend = demo_backend()
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=make_config())
    async with server:
        port = server.sockets[0].getsockname()[1]
        first = await run_fake_call("127.0.0.1", port, FakeCall(list(TRANSFER), uniqueid=uniqueid))
        await app.wait_idle()
        second = await run_fake_call("127.0.0.1", port, FakeCall(list(TRANSFER), uniqueid=uniqueid))
        await app.wait_idle()
    assert len(backend.transfers) == 2  # both callers confirmed: both transfers happened
    assert len({t.idempotency_key for t in backend.transfers}) == 2
    assert len({t.reference for t in backend.transfers}) == 2
    starts = [cid for cid, s, _ in backend.events if s == "start"]
    assert len(starts) == len(set(starts)) == 2  # two call records, not one merged
    assert all(d["asterisk_uniqueid"] == uniqueid for _, s, d in backend.events if s == "start")
    for call in (first, second):
        assert any("transfer_ok" in c for c in call.commands("STREAM FILE")), call.commands("STREAM FILE")


# --- finding 12: limits -----------------------------------------------------------------------
async def test_a_drip_fed_header_is_cut_at_the_deadline_and_recorded() -> None:
    backend = demo_backend()
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=make_config(header_timeout_s=0.5))
    async with server:
        reader, writer = await _connect(server.sockets[0].getsockname()[1])
        closed = asyncio.Event()

        async def drip() -> None:  # one header line every 0.1 s, for ever: each line alone is "in time"
            n = 0
            while not closed.is_set():
                try:
                    writer.write(f"agi_var{n}: x\n".encode())
                    await writer.drain()
                except (ConnectionError, OSError):
                    return
                n += 1
                await asyncio.sleep(0.1)

        dripper = asyncio.create_task(drip())
        assert await asyncio.wait_for(reader.read(), BOUND_S) == b""  # the server hung up on it
        closed.set()
        await dripper
        writer.close()
        await asyncio.wait_for(app.wait_idle(), BOUND_S)
    (end,) = ends(backend).values()
    assert end["reason"] == "header_timeout"


async def test_a_silent_client_is_dropped_after_the_reply_timeout_and_recorded() -> None:
    backend = demo_backend()
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=make_config(reply_timeout_s=0.3))
    async with server:
        reader, writer = await _connect(server.sockets[0].getsockname()[1])
        writer.write(b"agi_network_script: hotline\nagi_uniqueid: u-silent\nagi_callerid: 13912345678\n\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), BOUND_S) == b"ANSWER\n"
        # ... and never answers
        assert await asyncio.wait_for(reader.read(), BOUND_S) == b""
        writer.close()
        await asyncio.wait_for(app.wait_idle(), BOUND_S)
    (end,) = ends(backend).values()
    assert end["reason"] == "reply_timeout"


async def test_a_protocol_error_leaves_a_call_record() -> None:
    backend = demo_backend()
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=make_config())
    async with server:
        reader, writer = await _connect(server.sockets[0].getsockname()[1])
        writer.write(b"agi_network_script: hotline\nagi_uniqueid: u-bad\nagi_callerid: 13912345678\n\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), BOUND_S) == b"ANSWER\n"
        writer.write(b"this is not AGI\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), BOUND_S) == b""
        writer.close()
        await asyncio.wait_for(app.wait_idle(), BOUND_S)
    steps = [s for _, s, _ in backend.events]
    assert steps[0] == "start" and steps[-1] == "end"
    (end,) = ends(backend).values()
    assert end["reason"] == "protocol_error"


async def test_connections_over_the_cap_are_refused_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    backend = demo_backend()
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=make_config(max_connections=1))
    async with server:
        port = server.sockets[0].getsockname()[1]
        r1, w1 = await _connect(port)
        w1.write(b"agi_network_script: hotline\nagi_uniqueid: u-1\n\n")
        await w1.drain()
        assert await asyncio.wait_for(r1.readline(), BOUND_S) == b"ANSWER\n"  # the first call is in progress
        with caplog.at_level(logging.WARNING, logger="callcenter.adapters.ivr.agi"):
            r2, w2 = await _connect(port)
            w2.write(b"agi_network_script: hotline\nagi_uniqueid: u-2\n\n")
            await w2.drain()
            assert await _closed(r2)  # refused: not a single command
        assert app.refused == 1
        assert any("refused" in r.getMessage() and "agi_max_connections" in r.getMessage() for r in caplog.records)
        for w in (w1, w2):
            w.close()
        await asyncio.wait_for(app.wait_idle(), BOUND_S)


# --- finding 8 / issue 12 item 10: please wait, type-ahead ---------------------------------------
class SlowPinCheck:
    """The demo backend whose PIN check takes ``seconds`` (as argon2 behind a busy pool does)."""

    def __init__(self, seconds: float) -> None:
        self.inner = demo_backend()
        self.seconds = seconds
        self.done = threading.Event()

    def authenticate(self, *args):  # type: ignore[no-untyped-def]
        self.done.wait(self.seconds)  # simulated work, not a timing assertion
        return self.inner.authenticate(*args)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


async def test_keys_typed_during_the_pin_check_are_kept_and_please_wait_is_played() -> None:
    """README's keys 1310000000001#135790#1: the final 1 arrives while the engine authenticates."""
    backend = SlowPinCheck(1.0)
    config = make_config(wait_prompt_after_s=0.0, typeahead_poll_ms=50)
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=config)
    async with server:
        port = server.sockets[0].getsockname()[1]
        # "1" for balances pressed 0.3 s after the PIN, while the check still runs; then the caller hangs up
        call = await run_fake_call("127.0.0.1", port, FakeCall(LOGIN + ["+1@300", "hangup"]))
        await app.wait_idle()
    streams = call.commands("STREAM FILE")
    wait = [c for c in streams if "/please_wait" in c]
    assert wait == ['STREAM FILE cc/zh-CN/please_wait "0123456789*#"']
    assert call.commands("WAIT FOR DIGIT 50")
    assert call.lost_keys == []
    assert account_tail_read([c for c, _ in call.transcript]) == list("3456")  # the typed-ahead 1 read balances
    assert not [c for c in call.commands("GET DATA") if "main_menu" in c]  # no second question for it


async def test_after_a_wrong_pin_keys_typed_ahead_are_dropped_so_the_caller_hears_why() -> None:
    backend = SlowPinCheck(0.6)
    config = make_config(wait_prompt_after_s=0.0, typeahead_poll_ms=50)
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=config)
    async with server:
        port = server.sockets[0].getsockname()[1]
        call = await run_fake_call("127.0.0.1", port, FakeCall(["1", ACCOUNT, "000000", "+1@200", "hangup"]))
        await app.wait_idle()
    assert any("wrong_credentials" in c for c in call.commands("STREAM FILE"))
    assert [c for c in call.commands("GET DATA") if "enter_account" in c]  # asked again, not skipped


class SlowBackOffice:
    """The demo backend whose balance lookup and transfer take ``seconds`` (a busy back office)."""

    def __init__(self, seconds: float) -> None:
        self.inner = demo_backend()
        self.seconds = seconds
        self.done = threading.Event()

    def balances(self, *args):  # type: ignore[no-untyped-def]
        self.done.wait(self.seconds)  # simulated work, not a timing assertion
        return self.inner.balances(*args)

    def transfer(self, *args, **kw):  # type: ignore[no-untyped-def]
        self.done.wait(self.seconds)
        return self.inner.transfer(*args, **kw)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


async def test_keys_typed_during_a_slow_balance_lookup_answer_the_next_question() -> None:
    """Not only the PIN check: a key pressed while the balances are fetched is read (WAIT FOR DIGIT), not lost."""
    backend = SlowBackOffice(1.0)
    config = make_config(wait_prompt_after_s=0.0, typeahead_poll_ms=50)
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=config)
    async with server:
        port = server.sockets[0].getsockname()[1]
        # "1" balances, then "0" (an agent) pressed 300 ms later, while the lookup still runs
        call = await run_fake_call("127.0.0.1", port, FakeCall(LOGIN + ["1", "+0@300"]))
        await app.wait_idle()
    assert call.lost_keys == []
    assert call.commands("WAIT FOR DIGIT 50")
    assert len([c for c in call.commands("STREAM FILE") if "/please_wait" in c]) == 1  # the PIN check's only
    assert call.variables.get("CC_HANDOFF") == "1"  # the typed-ahead 0 answered "人工服务请按0"
    assert not [c for c in call.commands("GET DATA") if "after_info" in c]


async def test_keys_typed_during_a_transfer_are_read_but_the_caller_hears_its_result() -> None:
    backend = SlowBackOffice(1.0)
    config = make_config(wait_prompt_after_s=0.0, typeahead_poll_ms=50)
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=config)
    async with server:
        port = server.sockets[0].getsockname()[1]
        call = await run_fake_call("127.0.0.1", port, FakeCall(TRANSFER[:-1] + ["+9@300", "hangup"]))
        await app.wait_idle()
    assert call.lost_keys == []  # the 9 reached us...
    assert [a for c, a in call.transcript if c.startswith("WAIT FOR DIGIT") and a != "200 result=0"] == ["200 result=57"]
    assert len(backend.inner.transfers) == 1
    cmds = [c for c, _ in call.transcript]
    ok = next(i for i, c in enumerate(cmds) if "/transfer_ok" in c)  # ...but the result is still spoken,
    assert "/num_d" in cmds[ok + 1]  # its reference number too
    assert any(c.startswith("GET DATA") for c in cmds[ok:])  # and the next question is asked, not skipped
