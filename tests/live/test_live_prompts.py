"""The dialler's outbound prompts on a real Asterisk 22: `callcenter prompts build` renders ``safe-harbour`` and
``leave-message`` at the top of its tree; copied to ``<sounds>/cc/`` (the README's step), an answered call the
engine sends to the shipped [cc-play] with ``play(call, "cc/safe-harbour")`` hears the file, and so does a
machine (AMD through the shipped amd.conf) with ``cc/leave-message`` (issue 12 item 8)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from callcenter.services.dialer.engine import MACHINE_PROMPT, SAFE_HARBOUR_PROMPT
from callcenter.adapters.ivr import prompts
from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from tests.adapters import ami_scenarios
from tests.adapters.ami_scenarios import LIVE_CAPTURES, SCENARIOS, options_of
from tests.live.asterisk import LiveAsterisk, live_binary
from tests.live.capture import RecordingProxy


@pytest.mark.parametrize("name, prompt", [("safe_harbour_played", SAFE_HARBOUR_PROMPT),
                                          ("machine_hears_leave_message", MACHINE_PROMPT)])
async def test_outbound_prompt_is_heard_from_the_copied_tree(tmp_path: Path, name: str, prompt: str) -> None:
    # the scenarios play what the dialler plays
    assert (ami_scenarios.SAFE_HARBOUR_PROMPT, ami_scenarios.MACHINE_PROMPT) == (SAFE_HARBOUR_PROMPT, MACHINE_PROMPT)
    rendered = tmp_path / "prompts"
    prompts.build(rendered, ("zh-CN", "en"), only={"outbound_safe_harbour", "outbound_leave_message"})
    for file in (SAFE_HARBOUR_PROMPT, MACHINE_PROMPT):  # what the dialler names, relative to the sound prefix
        assert (rendered / f"{file.removeprefix('cc/')}.wav").exists(), sorted(rendered.iterdir())
    binary = live_binary()
    assert binary is not None
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=rendered)
    pbx.start()
    try:
        proxy = await RecordingProxy(pbx.ami_address).start()
        try:
            host, port = proxy.address
            ami = AmiClient(AmiServer(host, port, "callcenter", pbx.ami_secret), options_of(name))
            await SCENARIOS[name](ami, pbx.cli)
        finally:
            await proxy.aclose()
        log = pbx.log()
        played = re.findall(r"Playing '([^']+)'", log)
        # "Playing 'cc/safe-harbour.<format>' (language 'en')": found under sounds/cc/ whatever the language
        assert [p.rsplit(".", 1)[0] for p in played if p.startswith("cc/")] == [prompt], played
        # a missing sound is "File ... does not exist in any format" / "Unable to open" (not the modules' notices
        # of optional configuration files "not found", which an Asterisk built with more modules logs)
        assert "Unable to open" not in log and "does not exist in any format" not in log, log[-3000:]
        if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
            proxy.write(LIVE_CAPTURES / f"{name}.ami", note=f"live: {name} against {pbx.version}")
    finally:
        pbx.kill()
