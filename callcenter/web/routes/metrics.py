"""``GET /metrics``: the App's Prometheus registry in the text format (``callcenter.services.metrics``).

Who may read it: an administrator (staff session cookie or bearer token), or any request from loopback
(127.0.0.1, ::1) while ``metrics_from_loopback`` is true (a Prometheus on the same host needs no login). Anyone
else gets 401 without a session and 403 with a session of another role, like the other admin routes. Behind a
reverse proxy on the same host every request comes from loopback: set ``metrics_from_loopback = false`` there
(or have the proxy send ``X-Forwarded-For`` to a uvicorn that trusts it).
"""

from __future__ import annotations

import ipaddress

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from callcenter.services.metrics import CONTENT_TYPE
from callcenter.web.deps import CoreDep, client_ip, current_principal
from callcenter.web.errors import ApiError

router = APIRouter(tags=["health"])


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # not an address (a Unix socket, a test client's name)
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


async def metrics_reader(request: Request) -> None:
    """Loopback (when the setting allows it) or an administrator; 401 / 403 otherwise."""
    if request.app.state.core.settings.metrics_from_loopback and is_loopback(client_ip(request)):
        return
    principal = await current_principal(request)
    if principal.role != "admin":
        raise ApiError(403, "forbidden")


@router.get("/metrics", dependencies=[Depends(metrics_reader)], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, 401: {}, 403: {}})
async def metrics(core: CoreDep) -> Response:
    """Calls in flight, dial level, abandon rate today, agents by state, telephony connections, FastAGI sessions,
    transfers, SSE subscribers, event-loop lag (README: Metrics)."""
    body = await anyio.to_thread.run_sync(core.metrics.render)  # the database figures are queried
    return Response(body, media_type=CONTENT_TYPE)
