"""Who may touch a client: the one rule behind every read of a client's record and every movement of its money.

Pure: the caller (``callcenter.services.access``) builds the ``Actor`` from a staff session or an authenticated
IVR call and looks up the client's service group; this module only decides.

==============  =============================================  =================================================
actor           reads a client's record                        moves a client's money
==============  =============================================  =================================================
agent           own service group, and the client of a call    never (the client moves it on the hotline, a
                routed to them (an open desk contact)          supervisor through the API)
supervisor      the groups they supervise, and the client of a    the groups they supervise
                call they took at the desk (an escalation)
admin           every client (audit-logged)                    never: admins administer staff, campaigns and
                                                               groups; client money is not theirs to move
client (IVR)    only themself                                  only their own accounts
back_office     every client                                   every client's (in-process tools only: the
                                                               transfer benchmark and the tests; never built
                                                               from a web request or a call)
qa              none (QA staff, 质检, listen to recordings and      never
                evaluate them: ``may_listen``)
==============  =============================================  =================================================

Recordings (``may_listen``, ``may_download``): an admin and QA staff listen to every recording, a supervisor to
the recordings of agents in the groups they supervise, an agent to their own calls only when the setting
``recording_agent_may_listen`` allows it; only admins download the file. Every playback and download is
audit-logged by ``callcenter.services.recordings``.

Agents on the wall board (``may_watch_agent``): a supervisor sees the agents of the groups they supervise, an
admin every agent; nobody else watches agents.

A refusal is reported as "not found" by every caller, so account numbers and client ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass

STAFF_ROLES = ("agent", "supervisor", "admin", "qa")


@dataclass(frozen=True)
class Actor:
    role: str  # agent / supervisor / admin / qa / client / back_office
    staff_id: int | None = None
    group_ids: frozenset[int] = frozenset()  # agent: own group; supervisor: supervised groups
    contact_client_ids: frozenset[int] = frozenset()  # agent: clients of their open desk contacts
    client_id: int | None = None  # client: the authenticated client
    name: str = ""  # back_office: which tool

    @classmethod
    def staff(cls, role: str, staff_id: int, group_ids: frozenset[int] | set[int] = frozenset(),
              contact_client_ids: frozenset[int] | set[int] = frozenset()) -> "Actor":
        if role not in STAFF_ROLES:
            raise ValueError(f"unknown staff role {role!r}")
        return cls(role, staff_id, frozenset(group_ids), frozenset(contact_client_ids))

    @classmethod
    def client(cls, client_id: int) -> "Actor":
        return cls("client", client_id=int(client_id))

    @classmethod
    def back_office(cls, name: str) -> "Actor":
        return cls("back_office", name=name)

    @property
    def scope(self) -> str:
        """The principal an idempotency key belongs to: the same key from another principal is another request."""
        if self.role == "client":
            return f"client:{self.client_id}"
        if self.role == "back_office":
            return f"back_office:{self.name}"
        return f"staff:{self.staff_id}"


def may_read_client(actor: Actor, client_id: int, group_id: int | None) -> bool:
    if actor.role in ("admin", "back_office"):
        return True
    if actor.role == "client":
        return actor.client_id is not None and actor.client_id == client_id
    in_group = group_id is not None and group_id in actor.group_ids
    if actor.role in ("agent", "supervisor"):  # their groups' clients, and whoever they are on a call with
        return in_group or client_id in actor.contact_client_ids
    return False


def may_move_money(actor: Actor, client_id: int, group_id: int | None) -> bool:
    if actor.role == "back_office":
        return True
    if actor.role == "client":
        return actor.client_id is not None and actor.client_id == client_id
    if actor.role == "supervisor":
        return group_id is not None and group_id in actor.group_ids
    return False  # agents and admins never move client money


# --- recordings (issue 14) ---------------------------------------------------------------------------------

def may_listen(actor: Actor, agent_id: int | None, agent_group_id: int | None, agent_may_listen_own: bool) -> bool:
    """Whether ``actor`` may play a recording of a call taken by ``agent_id`` (a member of ``agent_group_id``)."""
    if actor.role in ("admin", "qa"):
        return True
    if actor.role == "supervisor":
        return agent_group_id is not None and agent_group_id in actor.group_ids
    if actor.role == "agent":
        return agent_may_listen_own and agent_id is not None and agent_id == actor.staff_id
    return False


def may_download(actor: Actor) -> bool:
    """Only admins take a recording's file away (a download); everyone else listens in the browser."""
    return actor.role == "admin"


def may_watch_agent(actor: Actor, agent_group_id: int | None) -> bool:
    """Whether ``actor`` sees an agent of ``agent_group_id`` on the wall board (state, call, figures)."""
    if actor.role == "admin":
        return True
    if actor.role == "supervisor":
        return agent_group_id is not None and agent_group_id in actor.group_ids
    return False
