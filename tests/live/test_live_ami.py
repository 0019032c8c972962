"""The AMI adapter against a real Asterisk 22 running the dialplan and profiles we ship (see
tests/adapters/ami_scenarios.py). With CALLCENTER_LIVE_RECORD=1 each run's traffic is written to
tests/fixtures/asterisk-22-live/<scenario>.ami, which the ordinary suite replays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callcenter.telephony.ami import AmiClient, AmiServer
from tests.adapters.ami_scenarios import LIVE_CAPTURES, SCENARIOS, options_of
from tests.live.asterisk import SECOND, LiveAsterisk, live_binary
from tests.live.capture import RecordingProxy


async def run_live(name: str, pbx: LiveAsterisk, secret: str | None = None) -> None:
    proxy = await RecordingProxy(pbx.ami_address).start()
    try:
        host, port = proxy.address
        ami = AmiClient(AmiServer(host, port, "callcenter", secret or pbx.ami_secret), options_of(name))
        try:
            await SCENARIOS[name](ami, pbx.cli)
        except BaseException:
            print(pbx.log()[-3000:])
            raise
    finally:
        await proxy.aclose()
    if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
        proxy.write(LIVE_CAPTURES / f"{name}.ami", note=f"live: {name} against {pbx.version}")


@pytest.mark.parametrize("name", ["one_digit_agent_room", "outbound_outcomes", "answered_into_agent_room",
                                  "call_ids_never_collide", "national_dial_string",
                                  "amd_person_and_machine"])
async def test_scenario(asterisk: LiveAsterisk, name: str) -> None:
    await run_live(name, asterisk)


async def test_shipped_amd_conf_loads_app_amd(asterisk: LiveAsterisk) -> None:
    """config/asterisk/amd.conf is copied with the rest: AMD() exists (app_amd declines to load without it)."""
    modules = asterisk.cli("module show like app_amd")
    assert "app_amd.so" in modules and "Running" in modules, modules
    assert "-= Info about Application 'AMD' =-" in asterisk.cli("core show application AMD")


async def test_bad_secret(asterisk: LiveAsterisk) -> None:
    await run_live("bad_secret", asterisk, secret="not-the-secret")


async def test_restart(tmp_path: Path) -> None:
    binary = live_binary()
    assert binary is not None
    pbx = LiveAsterisk(binary, tmp_path / "ast", bind=SECOND)  # beside the module's server
    pbx.start()
    try:
        await run_live("restart_is_told_from_a_failure", pbx)
    finally:
        pbx.kill()
