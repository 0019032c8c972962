"""The AMI adapter against a real Asterisk 22 running the dialplan and profiles we ship (see
tests/adapters/ami_scenarios.py). With CALLCENTER_LIVE_RECORD=1 each run's traffic is written to
tests/fixtures/asterisk-22-live/<scenario>.ami, which the ordinary suite replays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from tests.adapters.ami_scenarios import LIVE_CAPTURES, MULTI_SCENARIOS, SCENARIOS, multi_capture, options_of
from tests.live.asterisk import PRIMARY, SECOND, LiveAsterisk, live_binary
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
                                  "amd_person_and_machine", "agent_phone_never_answers",
                                  "recorded_call_muted_and_stopped"])
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


async def run_live_multi(name: str, pbxs: list[LiveAsterisk]) -> None:
    """A scenario over several servers / connections (``MULTI_SCENARIOS``), each server behind its own recorder."""
    n_servers, n_connections, scenario = MULTI_SCENARIOS[name]
    assert len(pbxs) == n_servers
    proxies = [await RecordingProxy(p.ami_address).start() for p in pbxs]
    try:
        servers = [AmiServer(*proxy.address, "callcenter", pbx.ami_secret) for proxy, pbx in zip(proxies, pbxs)]
        try:
            await scenario(servers, pbxs[0].cli)
        except BaseException:
            for pbx in pbxs:
                print(pbx.log()[-3000:])
            raise
    finally:
        for proxy in proxies:
            await proxy.aclose()
    if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
        for i, (proxy, pbx) in enumerate(zip(proxies, pbxs), 1):
            assert len(proxy.sessions) == n_connections, len(proxy.sessions)
            for j in range(n_connections):
                proxy.write(multi_capture(name, i, j + 1), session=j,
                            note=f"live: {name}, server {i} of {n_servers}, connection {j + 1} against {pbx.version}")


async def test_engine_restart_recovers_the_call_and_the_agent_leg(asterisk: LiveAsterisk) -> None:
    await run_live_multi("recovered_after_engine_restart", [asterisk])


async def test_two_servers(asterisk: LiveAsterisk, tmp_path: Path) -> None:
    binary = live_binary()
    assert binary is not None and asterisk.bind == PRIMARY
    second = LiveAsterisk(binary, tmp_path / "ast-b", bind=SECOND)
    second.start()
    try:
        await run_live_multi("two_servers_name_their_server", [asterisk, second])
    finally:
        second.stop()
