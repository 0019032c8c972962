"""``GET /live/wallboard`` over a real server (uvicorn, port 0): two supervisors' streams get the same snapshots,
computed once for both (``web.live.WallboardFeed``); a ``wallboard`` bus event brings a snapshot at once; when
both have gone the feed stops."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import uvicorn

from callcenter.bootstrap import App
from callcenter.services import kpis
from callcenter.web import live
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, build

pytestmark = pytest.mark.db
WAIT = 20.0  # a bound against hanging, never a timing assertion


async def login(base: str, user: str) -> httpx.AsyncClient:
    c = httpx.AsyncClient(base_url=base, timeout=WAIT)
    page = await c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await c.post("/login", data={"username": user, "password": PASSWORDS[user], "csrf": token})
    assert r.status_code == 303, r.text
    return c


async def snapshots(c: httpx.AsyncClient, n: int, out: list[dict[str, Any]]) -> None:
    async with c.stream("GET", "/live/wallboard", timeout=None) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
                if len(out) >= n:
                    return


async def until(cond: Any) -> None:
    for _ in range(int(WAIT / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_two_supervisors_share_one_computation(core: App, monkeypatch: pytest.MonkeyPatch) -> None:
    build(core)
    calls: list[int] = []
    real = kpis.wallboard

    def counted(*args: Any, **kwargs: Any) -> dict[str, object]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kpis, "wallboard", counted)
    monkeypatch.setattr(live, "TICK_S", 3600.0)  # no tick during the test: a snapshot at the start and per nudge
    app = create_app(core)

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        core.bus.bind_loop(asyncio.get_running_loop())
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)  # readiness only
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            sup, adm = await login(base, "sup1"), await login(base, "adm")
            one: list[dict[str, Any]] = []
            two: list[dict[str, Any]] = []
            first = asyncio.create_task(snapshots(sup, 3, one))
            second = asyncio.create_task(snapshots(adm, 3, two))
            feed = live.wallboard_feed(app)
            await until(lambda: len(one) == len(two) == 1)
            for n in (2, 3):  # a bus event: the next snapshot comes for both
                core.bus.publish("wallboard", {"type": "attempt"})
                await until(lambda: len(one) == len(two) == n)
            await asyncio.wait_for(asyncio.gather(first, second), WAIT)
            await until(lambda: not feed.running)  # both gone: the server notices and the feed stops
            assert feed.viewers == 0
            await sup.aclose()
            await adm.aclose()
            return one, two
        finally:
            server.should_exit = True
            await serving

    one, two = asyncio.run(main())
    assert all("campaigns" in s and "parts" in s for s in one + two)
    # 6 snapshots delivered, from 3 computations: the two streams read the same ones
    assert len(one) + len(two) == 6 and len(calls) == 3
