"""A client's accounts, balances and holdings. Every record opened is audit-logged; who may open which client is
the one access rule of ``callcenter.domain.access`` (service group; an agent's open call)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from typing import Annotated

from fastapi import APIRouter, Path, Query

from callcenter.services.access import ClientNotVisible, actor_for, visible_client
from callcenter.services.clients import client_summary, search_clients
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog
from callcenter.web.deps import CoreDep, PrincipalDep
from callcenter.web.errors import ApiError
from callcenter.web.text import Text

router = APIRouter(prefix="/api/clients", tags=["clients"])


def open_client(core: Any, principal: Principal, client_id: int, purpose: str) -> dict[str, object]:
    """Load a client the principal may see, and write the audit record in the same transaction.
    Another group's client is reported as not found, so ids cannot be probed."""

    def work(s: Any) -> dict[str, object]:
        try:
            client = visible_client(s, actor_for(s, principal), client_id)
        except ClientNotVisible:
            raise ApiError(404, "not_found") from None
        s.add(AuditLog(at=core.clock(), staff_id=principal.staff_id, action=purpose, client_id=client.id))
        return client_summary(s, client)

    return run_in_transaction(core.sessions, work)


@router.get("", responses={401: {}})
async def find_clients(core: CoreDep, principal: PrincipalDep,
                       q: Annotated[Text, Query(min_length=1, max_length=32)]) -> list[dict[str, object]]:
    """Client search for the desk: a client number, fund account, mobile tail or part of a name, within what the
    caller may read; audit-logged (the query's digits masked)."""

    def work(s: Any) -> list[dict[str, object]]:
        found = search_clients(s, actor_for(s, principal), q)
        shown = "".join("*" if ch.isdigit() else ch for ch in q[:-4]) + q[-4:] if len(q) > 4 else q
        s.add(AuditLog(at=core.clock(), staff_id=principal.staff_id, action="search_clients",
                       detail=f"q={shown} found={len(found)}"))
        return found

    return await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)


@router.get("/{client_id}", responses={401: {}, 404: {}})
async def get_client(core: CoreDep, principal: PrincipalDep,
                     client_id: int = Path(ge=1, le=2**31 - 1)) -> dict[str, object]:
    return await anyio.to_thread.run_sync(open_client, core, principal, client_id, "api_view_client")


@router.get("/{client_id}/accounts", responses={401: {}, 404: {}})
async def get_accounts(core: CoreDep, principal: PrincipalDep,
                       client_id: int = Path(ge=1, le=2**31 - 1)) -> list[dict[str, object]]:
    data = await anyio.to_thread.run_sync(open_client, core, principal, client_id, "api_view_accounts")
    return data["accounts"]  # type: ignore[return-value]  # open_client's summary dict is loosely typed


@router.get("/{client_id}/holdings", responses={401: {}, 404: {}})
async def get_holdings(core: CoreDep, principal: PrincipalDep,
                       client_id: int = Path(ge=1, le=2**31 - 1)) -> list[dict[str, object]]:
    data = await anyio.to_thread.run_sync(open_client, core, principal, client_id, "api_view_holdings")
    return data["holdings"]  # type: ignore[return-value]  # open_client's summary dict is loosely typed
