"""Live push over Server-Sent Events.

* ``GET /live/agent``: the agent's own topic ``agent:<staff id>``. The dialler opens the desk contact of a call
  that reaches the agent itself and announces it (``contact_opened``): the browser gets
  ``{"type": "call", "contact_id": N}`` and fetches the card. A ``call_connected`` event (the IVR hand-off)
  still becomes the agent's desk contact here, server-side (so a call routed to them is what grants them its
  client).
  The dialler's ``agent_state`` events reach the screen as ``{"type": "state", ...}``; a ``preview`` lead goes
  through with its number masked (the agent dials or skips it with ``POST /api/desk/preview``).
* ``GET /live/wallboard``: supervisors and admin; a fresh wall-board snapshot every second, and at once when
  something happens (a ``wallboard`` bus event), at most one per 200 ms. The snapshot carries the engine's
  parts too (``parts``: each part's state from the runtime supervisor, see ``parts_line``).

Plain ``StreamingResponse`` with ``text/event-stream`` framing; a comment line every 15 s keeps proxies open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from callcenter.domain.masking import mask_phone
from callcenter.services import desk, kpis
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import run_in_transaction
from callcenter.web.deps import require_roles
from callcenter.web.pages.common import lang_of, parts_line

router = APIRouter(prefix="/live", include_in_schema=False)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data, ensure_ascii=False, default=str) + "\n\n").encode()


@router.get("/agent")
async def agent_stream(request: Request, principal: Principal = Depends(require_roles("agent"))) -> StreamingResponse:
    core = request.app.state.core
    topic = f"agent:{principal.staff_id}"

    async def stream() -> AsyncIterator[bytes]:
        async with core.bus.subscribe(topic) as sub:
            yield sse({"type": "hello"})
            while True:
                try:
                    _, event = await asyncio.wait_for(sub.__anext__(), 15)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                if event.get("type") == "contact_opened":  # the engine opened the contact with the call
                    yield sse({"type": "call", "contact_id": event.get("contact_id"), "seq": event.get("seq")})
                elif event.get("type") == "call_connected":
                    try:
                        contact_id = await anyio.to_thread.run_sync(
                            desk.contact_from_event, core.sessions, principal.staff_id, event, core.clock(),
                            core.settings.scripts_path)
                    except desk.DeskError:
                        continue
                    yield sse({"type": "call", "contact_id": contact_id, "seq": event.get("seq")})
                    core.bus.publish("wallboard", {"type": "agent_state", "staff_id": principal.staff_id,
                                                   "state": "talking"})
                elif event.get("type") == "agent_state":  # the dialler's state changes, in the screen's shape
                    reason = event.get("reason") if event.get("reason") in desk.PAUSE_REASONS else ""
                    yield sse({"type": "state", "state": event.get("state"), "reason": reason, "since": None,
                               "seq": event.get("seq")})
                elif event.get("type") == "preview":  # preview mode: the lead to dial or skip (number masked)
                    yield sse({**event, "phone": mask_phone(str(event.get("phone") or ""))})
                else:
                    yield sse(event)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


@router.get("/wallboard")
async def wallboard_stream(request: Request,
                           principal: Principal = Depends(require_roles("supervisor", "admin"))) -> StreamingResponse:
    core = request.app.state.core
    tz = ZoneInfo(core.settings.timezone)
    lang = lang_of(request)

    def snapshot() -> dict[str, Any]:
        figures = run_in_transaction(core.sessions, lambda s: kpis.wallboard(s, core.clock(), tz))
        return {**figures, "parts": parts_line(core, lang, tz)}

    async def stream() -> AsyncIterator[bytes]:
        async with core.bus.subscribe("wallboard") as sub:
            while True:
                yield sse(await anyio.to_thread.run_sync(snapshot), "wallboard")
                try:  # the next snapshot: in a second, or as soon as something happens
                    await asyncio.wait_for(sub.__anext__(), 1.0)
                    await asyncio.sleep(0.2)  # coalesce a burst of events into one snapshot
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                except TimeoutError:
                    pass
                if await request.is_disconnected():
                    return

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)
