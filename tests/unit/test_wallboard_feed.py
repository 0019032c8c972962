"""The wall board's shared feed (``web.live.WallboardFeed``): one computation per tick whatever the number of
viewers, a nudge brings the next one forward, the task stops with the last viewer and a failing computation
does not end it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from callcenter.web.live import WallboardFeed

WAIT = 10.0


class Counting:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            n = self.calls
        if n <= self.fail_first:
            raise RuntimeError("database down")
        return {"n": n}


async def read(feed: WallboardFeed, count: int, seen: list[tuple[int, int]]) -> None:
    async with feed.watch():
        version = 0
        for _ in range(count):
            version, snap = await feed.next(version)
            seen.append((version, id(snap)))


def test_every_viewer_reads_the_same_snapshots_computed_once_per_tick() -> None:
    compute = Counting()

    async def main() -> list[list[tuple[int, int]]]:
        feed = WallboardFeed(compute, interval=0.02, coalesce=0.0)
        views: list[list[tuple[int, int]]] = [[] for _ in range(5)]
        await asyncio.wait_for(asyncio.gather(*(read(feed, 4, v) for v in views)), WAIT)
        assert not feed.running and feed.viewers == 0  # the last viewer stopped the task
        return views

    views = asyncio.run(main())
    # 5 viewers x 4 snapshots = 20 deliveries; the versions each saw are the feed's, each computed once
    by_version: dict[int, set[int]] = {}
    for view in views:
        assert [v for v, _ in view] == sorted({v for v, _ in view})  # newer each time, never twice
        for version, ident in view:
            by_version.setdefault(version, set()).add(ident)
    assert all(len(idents) == 1 for idents in by_version.values())  # one snapshot object per version
    assert max(by_version) < 20 and compute.calls <= max(by_version) + 1  # (+1: one cut short by the stop)


def test_a_nudge_brings_the_next_snapshot_forward_and_the_feed_stops_without_viewers() -> None:
    compute = Counting()

    async def main() -> None:
        feed = WallboardFeed(compute, interval=3600, coalesce=0.0)  # no tick during the test: only nudges
        async with feed.watch():
            version, first = await asyncio.wait_for(feed.next(0), WAIT)
            assert first == {"n": 1}
            feed.nudge()
            version, second = await asyncio.wait_for(feed.next(version), WAIT)
            assert second == {"n": 2}
        assert not feed.running
        calls = compute.calls
        await asyncio.sleep(0.05)
        assert compute.calls == calls  # nothing computed for nobody
        async with feed.watch():  # a new viewer: a fresh snapshot, not the stale one
            _, third = await asyncio.wait_for(feed.next(0), WAIT)
            assert third == {"n": 3}

    asyncio.run(main())


def test_a_failing_computation_is_tried_again() -> None:
    compute = Counting(fail_first=2)

    async def main() -> dict[str, Any]:
        feed = WallboardFeed(compute, interval=0.01, coalesce=0.0)
        async with feed.watch():
            _, snap = await asyncio.wait_for(feed.next(0), WAIT)
            return snap

    assert asyncio.run(main()) == {"n": 3}
