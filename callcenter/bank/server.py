"""The simulated bank as a process of its own: a Starlette app served by uvicorn (``callcenter bank serve``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from callcenter.bank.books import BankBooks, utc_now
from callcenter.bank.faults import BankFaults
from callcenter.bank.protocol import BankProtocol
from callcenter.settings import Settings

log = logging.getLogger(__name__)

DIED = 75  # exit status of a bank that went down by fault injection
MAX_BODY = 16 * 1024 * 1024


def create_bank_app(protocol: BankProtocol, *, hang_seconds: float = 10.0) -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "too_large"}, status_code=413)
        reply = await anyio.to_thread.run_sync(protocol.handle, request.method, request.url.path, body)
        if reply.fault == "die":
            log.warning("bank going down (fault injection)")
            os._exit(DIED)
        if reply.fault == "hang":
            await asyncio.sleep(hang_seconds)  # the client has given up long before: its answer is lost
        return JSONResponse(reply.body, status_code=reply.status)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


async def serve_bank(s: Settings, *, clock: Callable[[], datetime] = utc_now,
                     parent_pid: int | None = None) -> None:
    """Serve the bank at ``bank_url`` on ``bank_database_url`` until stopped (Ctrl-C, SIGTERM), or until the
    process ``parent_pid`` is gone (a bank started by ``callcenter run`` never outlives the engine)."""
    books = BankBooks.open(s.resolved_bank_database_url(), clock=clock, tz=s.tz)
    faults = BankFaults.from_settings(s)
    protocol = BankProtocol(books, faults)
    host, port = host_port(s.bank_url)
    config = uvicorn.Config(create_bank_app(protocol, hang_seconds=s.bank_fault_hang_seconds),
                            host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    watcher = asyncio.create_task(_exit_with_parent(server, parent_pid)) if parent_pid else None
    if faults.active:
        log.warning("bank fault injection on: %s", faults)
    log.info("simulated bank on %s:%s", host, port)
    try:
        await server.serve()
    finally:
        if watcher is not None:
            watcher.cancel()
        books.close()


async def _exit_with_parent(server: uvicorn.Server, parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    log.warning("engine process %s is gone; the bank stops", parent_pid)
    server.should_exit = True
