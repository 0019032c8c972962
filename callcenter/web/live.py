"""Live push over Server-Sent Events.

* ``GET /live/agent``: the agent's own topic ``agent:<staff id>``; the stream only reads. It first sends
  ``{"type": "status", ...}`` (the ``GET /api/desk/status`` shape, read after subscribing) so a (re)connecting
  screen sees the truth, then the events: ``contact_opened`` (the use case that connected the call opened the
  desk contact in its transaction) becomes ``{"type": "call", "contact_id": N, "seq"}`` and the browser fetches
  the card; ``agent_state`` becomes ``{"type": "state", "state", "reason", "since", "seq"}``; a ``preview``
  lead goes through with its number masked (the agent dials or skips it with ``POST /api/desk/preview``);
  anything else passes as it is.
* ``GET /live/wallboard``: supervisors and admin; a fresh wall-board snapshot every second, and at once when
  something happens (a ``wallboard`` bus event), at most one per 200 ms. The figures are computed once per
  process for every viewer (``WallboardFeed``: one task, started with the first viewer and stopped after the
  last; each stream sends the feed's newest snapshot), so their cost does not grow with the number of
  supervisors. Each stream cuts the snapshot to what its viewer may see (``kpis.board_for``: a supervisor sees
  the agents of their groups, an admin all) and adds the engine's parts (``parts``: each part's state from the runtime supervisor,
  see ``parts_line``, in the viewer's language).

Plain ``StreamingResponse`` with ``text/event-stream`` framing; a comment line every 15 s keeps proxies open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from callcenter.domain.masking import mask_phone
from callcenter.services import desk, kpis
from callcenter.services.access import staff_actor
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import read_only, run_in_transaction
from callcenter.web.deps import require_roles
from callcenter.web.pages.agent import status_out
from callcenter.web.pages.common import lang_of, parts_line

router = APIRouter(prefix="/live", include_in_schema=False)
log = logging.getLogger(__name__)
TICK_S = 1.0  # the wall board's figures are this fresh without events
COALESCE_S = 0.2  # a burst of events within this makes one snapshot

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data, ensure_ascii=False, default=str) + "\n\n").encode()


@router.get("/agent")
async def agent_stream(request: Request, principal: Principal = Depends(require_roles("agent", "supervisor"))) -> StreamingResponse:
    core = request.app.state.core
    topic = f"agent:{principal.staff_id}"

    async def stream() -> AsyncIterator[bytes]:
        async with core.bus.subscribe(topic) as sub:
            yield sse({"type": "hello"})
            current = await anyio.to_thread.run_sync(read_only, core.sessions,
                                                     lambda s: status_out(s, principal.staff_id, core.clock(),
                                                                        core.settings.wrap_up_limit_s, lang_of(request)))
            known = await anyio.to_thread.run_sync(read_only, core.sessions, desk.pause_codes_known)
            yield sse({"type": "status", **current.model_dump(mode="json")})
            while True:
                try:
                    _, event = await asyncio.wait_for(sub.__anext__(), 15)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                if event.get("type") == "contact_opened":
                    yield sse({"type": "call", "contact_id": event.get("contact_id"), "seq": event.get("seq")})
                elif event.get("type") == "agent_state":  # every state change, in the screen's shape
                    reason = event.get("reason") if event.get("reason") in known else ""
                    yield sse({"type": "state", "state": event.get("state"), "reason": reason,
                               "since": event.get("since"), "seq": event.get("seq")})
                elif event.get("type") == "preview":  # preview mode: the lead to dial or skip (number masked)
                    yield sse({**event, "phone": mask_phone(str(event.get("phone") or ""))})
                else:
                    yield sse(event)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


class WallboardFeed:
    """One wall-board snapshot per tick for every viewer of this process.

    While at least one viewer ``watch``es, one task computes ``compute()`` (in a worker thread) every
    ``interval`` seconds, or ``coalesce`` seconds after a ``nudge`` (something happened); viewers wait for the
    next snapshot with ``next``. The task stops when the last viewer leaves. A failing computation is logged and
    tried again at the next tick (the viewers keep the last snapshot)."""

    def __init__(self, compute: Callable[[], dict[str, Any]], *, interval: float = 1.0, coalesce: float = 0.2) -> None:
        self._compute = compute
        self._interval = interval
        self._coalesce = coalesce
        self._viewers = 0
        self._task: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()
        self._changed = asyncio.Condition()
        self.snapshot: dict[str, Any] | None = None
        self.version = 0  # snapshots computed so far

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def viewers(self) -> int:
        return self._viewers

    def nudge(self) -> None:
        """Something happened: compute the next snapshot soon (after ``coalesce``), not at the next tick."""
        self._nudged.set()

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator["WallboardFeed"]:
        self._viewers += 1
        if not self.running:  # the first viewer: a fresh start on this loop, no stale snapshot
            self._nudged = asyncio.Event()
            self._changed = asyncio.Condition()
            self.snapshot = None
            self._task = asyncio.create_task(self._run(), name="wallboard-feed")
        try:
            yield self
        finally:
            self._viewers -= 1
            if self._viewers == 0 and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def next(self, seen: int) -> tuple[int, dict[str, Any]]:
        """The first snapshot newer than version ``seen`` (waits for it): (its version, the snapshot)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.version > seen and self.snapshot is not None)
            assert self.snapshot is not None
            return self.version, self.snapshot

    async def _run(self) -> None:
        while True:
            self._nudged.clear()  # a nudge during the computation asks for the next one
            try:
                snapshot = await anyio.to_thread.run_sync(self._compute)
            except Exception:  # noqa: BLE001 - the board must survive a database hiccup
                log.exception("wall board: snapshot not computed")
            else:
                async with self._changed:
                    self.snapshot = snapshot
                    self.version += 1
                    self._changed.notify_all()
            try:
                await asyncio.wait_for(self._nudged.wait(), self._interval)
                await asyncio.sleep(self._coalesce)  # a burst of events makes one snapshot
            except TimeoutError:
                pass


def wallboard_feed(app: Any) -> WallboardFeed:
    """This process's feed (one per application), made on first use."""
    feed: WallboardFeed | None = getattr(app.state, "wallboard_feed", None)
    if feed is None:
        core = app.state.core
        tz = ZoneInfo(core.settings.timezone)
        level_s = core.settings.service_level_s
        feed = WallboardFeed(lambda: read_only(core.sessions, lambda s: kpis.wallboard(s, core.clock(), tz,
                                                                                         service_level_s=level_s)),
                             interval=TICK_S, coalesce=COALESCE_S)
        app.state.wallboard_feed = feed
    return feed


@router.get("/wallboard")
async def wallboard_stream(request: Request,
                           principal: Principal = Depends(require_roles("supervisor", "admin"))) -> StreamingResponse:
    core = request.app.state.core
    tz = ZoneInfo(core.settings.timezone)
    lang = lang_of(request)
    feed = wallboard_feed(request.app)
    actor = staff_actor(principal)

    async def forward(sub: Any) -> None:  # this viewer's bus subscription nudges the shared feed
        async for _ in sub:
            feed.nudge()

    async def stream() -> AsyncIterator[bytes]:
        async with core.bus.subscribe("wallboard") as sub, feed.watch():
            nudger = asyncio.create_task(forward(sub))
            try:
                seen = 0
                while True:
                    seen, figures = await feed.next(seen)
                    yield sse({**kpis.board_for(figures, actor), "parts": parts_line(core, lang, tz)}, "wallboard")
                    if await request.is_disconnected():
                        return
            finally:
                nudger.cancel()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)
