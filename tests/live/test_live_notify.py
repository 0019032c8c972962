"""A reminder call (an agentless notification call) through a real Asterisk 22 running our shipped dialplan, as
an operator runs it (README "A real Asterisk", steps 1-5: Asterisk's ``sounds/cc`` is the engine's prompts
directory, so the message rendered just before the call is there when it plays): the notification caller
renders the message to ``care/notify-<id>.wav`` and places the call; the simulated client
(``[sim-notified]``, a Local channel) answers and hears it in ``[cc-notify-menu]``, presses 1 (it plays again)
then 0: the call becomes the call core's hand-off ``cc-h<id>``, waits in ``[cc-handoff-wait]`` and is Redirected
into the ready agent's ConfBridge room (the agent's phone a Local channel in it); the desk contact opens, the client
hangs up and the agent is in wrap-up (issue 16, "Must show": the same reminder call on Asterisk).

With CALLCENTER_LIVE_RECORD=1 the engine's AMI traffic becomes tests/fixtures/asterisk-22-live/reminder_1_then_0.ami,
which tests/adapters/test_live_captures.py replays through the same scenario code."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callcenter.adapters.ivr import prompts
from callcenter.adapters.telephony.ami import AmiPool, AmiServer
from callcenter.bootstrap import App
from callcenter.services.dialer import campaigns as dialer
from tests.adapters.ami_scenarios import LIVE_CAPTURES
from tests.adapters.notify_world import (NOTIFY_OPTIONS, NotifyWorld, build_notify_world, run_reminder_call,
                                        run_reminder_nobody_free)
from tests.live.asterisk import LiveAsterisk, live_binary
from tests.live.capture import RecordingProxy

pytestmark = pytest.mark.db


@dataclass
class LiveNotify:
    world: NotifyWorld
    pbx: LiveAsterisk
    ami: RecordingProxy
    pool: AmiPool

    def played(self) -> list[str]:
        return [p.rsplit(".", 1)[0] for p in re.findall(r"Playing '([^']+)'", self.pbx.log())]

    @property
    def message(self) -> str:
        return f"cc/care/notify-{self.world.delivery_id}"

    def keep(self, name: str, note: str) -> None:
        """With CALLCENTER_LIVE_RECORD=1, the engine's AMI session as ``tests/fixtures/asterisk-22-live/<name>.ami``."""
        if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
            self.ami.write(LIVE_CAPTURES / f"{name}.ami", note=f"live: {note} against {self.pbx.version}")


@asynccontextmanager
async def live_notify(core: App, tmp_path: Path) -> AsyncIterator[LiveNotify]:
    """README step 5 as the live test runs it: `callcenter prompts build` into the engine's prompts directory, and
    Asterisk's sounds/cc is that directory (a symlink), so messages rendered later are found there too; an AMI pool
    through a recording proxy; real time."""
    binary = live_binary()
    assert binary is not None
    core.clock = lambda: datetime.now(timezone.utc)
    core.bus.bind_loop(asyncio.get_running_loop())
    core.settings.prompts_dir = tmp_path / "prompts"
    prompts.build(core.settings.prompts_path, langs=("zh-CN",))
    world = build_notify_world(core, core.clock())
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=core.settings.prompts_path)
    pbx.start()
    ami = await RecordingProxy(pbx.ami_address).start()
    pool = AmiPool([AmiServer(*ami.address, "callcenter", pbx.ami_secret)], NOTIFY_OPTIONS)
    try:
        await pool.start()
        yield LiveNotify(world, pbx, ami, pool)
    finally:
        await pool.aclose()
        await ami.aclose()
        pbx.kill()


async def test_reminder_call_heard_then_1_repeats_then_0_reaches_the_agent(core: App, tmp_path: Path) -> None:
    async with live_notify(core, tmp_path) as live:
        world, pbx, pool = live.world, live.pbx, live.pool

        async def hang_up(call_id: str) -> None:
            channel = pool.clients[0].tracker.channel_of(call_id)
            assert channel is not None and "@sim-notified-" in channel, channel
            assert channel in pbx.cli(f"confbridge list agent-{world.staff_id}")  # the client is in the room
            assert dialer.agent_state(core, world.staff_id)["state"] == "talking"
            await asyncio.sleep(1.0)
            pbx.cli(f"channel request hangup {channel}")

        await run_reminder_call(core, pool, world, hang_up)
        await pool.aclose()
        await live.ami.aclose()
        played, log = live.played(), pbx.log()
        # heard, heard again after 1, then the hold prompt of the hand-off; nothing missing
        assert played.count(live.message) == 2, played
        assert played.index("cc/zh-CN/please_wait") > max(i for i, p in enumerate(played) if p == live.message), played
        assert "Unable to open" not in log and "does not exist" not in log, log[-3000:]
        live.keep("reminder_1_then_0", "a reminder call, 1 (repeat) then 0 (to the agent's room)")


@pytest.mark.parametrize("zero", ["callback", "agent"])
async def test_reminder_call_with_nobody_free_tells_the_client_and_books_a_call_back(core: App, tmp_path: Path,
                                                                                     zero: str) -> None:
    """No agent ready: with ``notify_zero = callback`` the "0" books the call back at once and the client hears
    the sorry prompt; with ``agent`` the call waits as a hand-off in ``[cc-handoff-wait]`` (hearing "please wait")
    until ``handoff_wait_s``, then the call core plays the same prompt and books the call back. Captured as
    ``reminder_nobody_free_<zero>.ami``."""
    async with live_notify(core, tmp_path) as live:
        await run_reminder_nobody_free(core, live.pool, live.world, zero=zero)
        await live.pool.aclose()
        await live.ami.aclose()
        await asyncio.sleep(0.5)
        played, log = live.played(), live.pbx.log()
        assert played.count(live.message) == 2, played
        after = played[max(i for i, p in enumerate(played) if p == live.message) + 1:]
        # told before the end: at once (callback), or after waiting with "please wait" (agent)
        assert after[-1] == "cc/zh-CN/handoff_sorry", played
        assert ("cc/zh-CN/please_wait" in after) == (zero == "agent"), played
        assert "Unable to open" not in log and "does not exist" not in log, log[-3000:]
        live.keep(f"reminder_nobody_free_{zero}", f"a reminder call, 1 then 0 with no agent ready (notify_zero={zero})")
