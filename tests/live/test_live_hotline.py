"""The hotline over FastAGI through a real Asterisk 22 running our shipped [hotline] context: a caller keys the
README's digits and hears every prompt from ``<sounds>/cc/<lang>/`` (the files `callcenter prompts build` made,
copied beside Asterisk's own sounds), never from a path on the engine's host (real-Asterisk issue item 9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callcenter.ivr import prompts
from callcenter.ivr.agi import AgiConfig, start_agi_server
from callcenter.ivr.backend import demo_backend
from callcenter.telephony.ami import AmiClient, AmiServer
from tests.adapters.ami_scenarios import OPTIONS
from tests.live.asterisk import LiveAsterisk, live_binary


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    prompts.build(out, langs=("zh-CN",))
    return out


async def test_balance_call_plays_our_prompts_from_the_sounds_directory(rendered: Path, tmp_path: Path) -> None:
    binary = live_binary()
    assert binary is not None
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=rendered)
    pbx.start()
    backend = demo_backend()
    # the shipped dialplan reaches the engine at agi://127.0.0.1:4573/hotline
    server, app = await start_agi_server(backend, "127.0.0.1", 4573,
                                         config=AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"),
                                                          sound_prefix="cc"))
    try:
        async with server, AmiClient(AmiServer(*pbx.ami_address, "callcenter", pbx.ami_secret), OPTIONS) as ami:
            reply = await ami._send({"Action": "Originate", "Channel": "Local/s@sim-caller", "Context": "hotline",
                                     "Exten": "s", "Priority": "1", "Async": "true",
                                     "Variable": "CC_TEST_KEYS=11234567890123456#123456#1"}, as_list=False)
            assert reply.get("Response") == "Success"
            log = ""
            for _ in range(300):  # until the caller hears the balances (bounded: 60 s)
                log = pbx.log()
                if "Playing 'cc/zh-CN/available" in log or "Playing 'cc/zh-CN/balance" in log:
                    break
                await asyncio.sleep(0.2)
        played = [line.split("Playing '", 1)[1].split("'", 1)[0] for line in log.splitlines() if "Playing '" in line]
        # language, account, PIN (with "请稍候" while it is checked), then the balances: every file from cc/
        assert played[:3] == ["cc/zh-CN/welcome.slin", "cc/zh-CN/enter_account.slin", "cc/zh-CN/enter_pin.slin"], played
        assert "cc/zh-CN/please_wait.slin" in played and all(p.startswith("cc/zh-CN/") for p in played), played
        assert "does not exist" not in log and "Unable to open" not in log, log[-3000:]
    finally:
        app.close()
        pbx.kill()
