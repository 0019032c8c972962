"""The access rule of ``callcenter.domain.access`` applied on the store: the actor of a staff session (an agent's
open desk contacts loaded here) and the client a caller asks for, or "not found"."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.domain.access import Actor, may_read_client
from callcenter.store.models import Client
from callcenter.store.models.desk import DeskContact


class StaffPrincipal(Protocol):
    @property
    def staff_id(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def group_ids(self) -> frozenset[int]: ...


class ClientNotVisible(Exception):
    """The client does not exist or the actor may not touch it: callers answer "not found" either way."""


def actor_for(s: Session, principal: StaffPrincipal) -> Actor:
    """The actor of a logged-in staff member; for someone at the desk (an agent, or a supervisor taking an
    escalated call), with the clients of their own open desk contacts."""
    contacts: frozenset[int] = frozenset()
    if principal.role in ("agent", "supervisor"):
        contacts = frozenset(c for c in s.execute(
            select(DeskContact.client_id).where(DeskContact.agent_id == principal.staff_id,
                                                DeskContact.ended_at.is_(None), DeskContact.client_id.is_not(None))
        ).scalars().all() if c is not None)
    return Actor.staff(principal.role, principal.staff_id, principal.group_ids, contacts)


def staff_actor(principal: StaffPrincipal) -> Actor:
    """The actor without desk contacts (enough for money: agents never move it)."""
    return Actor.staff(principal.role, principal.staff_id, principal.group_ids)


def visible_client(s: Session, actor: Actor, client_id: int) -> Client:
    client = s.get(Client, client_id)
    if client is None or not may_read_client(actor, client.id, client.service_group_id):
        raise ClientNotVisible(client_id)
    return client


def may_read(actor: Actor, client: Client) -> bool:
    return may_read_client(actor, client.id, client.service_group_id)
