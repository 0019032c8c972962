"""The hotline over FastAGI through a real Asterisk 22 running our shipped [hotline] context: a caller keys
language, account and PIN, and the final ``1`` (balances) only while the PIN check still runs, after "请稍候"
has played, so it reaches the engine through a WAIT FOR DIGIT slice (res_agi drops keys between commands;
real-Asterisk issue item 10). The caller hears every prompt from ``<sounds>/cc/<lang>/`` (the files
`callcenter prompts build` made, copied beside Asterisk's own sounds), never from a path on the engine's host
(item 9). With CALLCENTER_LIVE_RECORD=1 the AGI traffic becomes tests/fixtures/asterisk-22-live/hotline_typeahead.agi,
which tests/adapters/test_live_captures.py replays."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from callcenter.adapters.ivr import prompts
from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.adapters.ivr.agi_replay import load_agi_capture
from callcenter.services.ivr.backend import demo_backend
from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from tests.adapters.ami_scenarios import LIVE_CAPTURES, OPTIONS
from tests.live.asterisk import AGI_PORT, LiveAsterisk, live_binary
from tests.live.capture import AgiRecordingProxy, render_agi

KEYS, LATER = "11234567890123456#123456#", "1"  # language 1, account, PIN; then "1" for balances
PIN_CHECK_S = 4.0  # as argon2 behind a busy hashing pool
LATER_AFTER_S = 2.0  # "请稍候" is over by then, the check is not


class SlowPinCheck:
    def __init__(self, seconds: float) -> None:
        self.inner = demo_backend()
        self.seconds = seconds
        self.never = threading.Event()

    def authenticate(self, *args: Any) -> Any:
        self.never.wait(self.seconds)  # simulated work
        return self.inner.authenticate(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    prompts.build(out, langs=("zh-CN",))
    return out


async def test_balance_call_with_type_ahead_plays_our_prompts_from_the_sounds_directory(rendered: Path,
                                                                                       tmp_path: Path) -> None:
    binary = live_binary()
    assert binary is not None
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=rendered)
    pbx.start()
    backend = SlowPinCheck(PIN_CHECK_S)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc", wait_prompt_after_s=0.0,
                       typeahead_poll_ms=250)
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=config)
    # the shipped dialplan reaches the engine at agi://127.0.0.1:4573/hotline: the recording proxy listens there
    proxy = await AgiRecordingProxy(("127.0.0.1", AGI_PORT), ("127.0.0.1", server.sockets[0].getsockname()[1])).start()
    try:
        async with server, AmiClient(AmiServer(*pbx.ami_address, "callcenter", pbx.ami_secret), OPTIONS) as ami:
            reply = await ami._send({"Action": "Originate", "Channel": "Local/s@sim-caller", "Context": "hotline",
                                     "Exten": "s", "Priority": "1", "Async": "true",
                                     "Variable": f"CC_TEST_KEYS={KEYS},CC_TEST_LATER={LATER},"
                                                 f"CC_TEST_PAUSE={LATER_AFTER_S}"}, as_list=False)
            assert reply.get("Response") == "Success"
            log = await pbx.log_once("Playing 'cc/zh-CN/available")  # the caller hears the balances
            await asyncio.sleep(1.0)
            pbx.cli("channel request hangup all")  # the caller hangs up while the balances are read
            await asyncio.wait_for(app.wait_idle(), 15)
        await proxy.aclose()
        played = [line.split("Playing '", 1)[1].split("'", 1)[0] for line in log.splitlines() if "Playing '" in line]
        # language, account, PIN (with "请稍候" while it is checked), then the balances: every file from cc/
        assert played[:3] == ["cc/zh-CN/welcome.slin", "cc/zh-CN/enter_account.slin", "cc/zh-CN/enter_pin.slin"], played
        assert "cc/zh-CN/please_wait.slin" in played and all(p.startswith("cc/zh-CN/") for p in played), played
        assert "cc/zh-CN/available.slin" in played, played
        # the "1" answered the main menu before it was asked: the menu was never played
        assert not [p for p in played if p.startswith("cc/zh-CN/main_menu")], played
        assert "does not exist" not in log and "Unable to open" not in log, log[-3000:]
        [session] = proxy.sessions
        capture = tmp_path / "session.agi"
        capture.write_bytes(render_agi(session))
        waits = [e for e in load_agi_capture(capture).exchanges if e.is_wait]
        # the "1" (ASCII 49) reached a WAIT FOR DIGIT slice: typed while the check ran, after "请稍候"
        assert [e.answer for e in waits if e.got_key] == [[b"200 result=49"]], waits
        if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
            proxy.write(LIVE_CAPTURES / "hotline_typeahead.agi",
                        note=f"live: hotline call with type-ahead during the PIN check against {pbx.version}")
    finally:
        await proxy.aclose()
        app.close()
        pbx.kill()

