"""Service groups (服务小组): 2-3 staff with at least one middle/back-office member, and the monthly assignment of
the important off-site clients (非现场重要客户) to groups by (potential) contribution rank.

Each public function is one use case run in one transaction on ``sessions``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.clients import account_balances
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, ServiceGroup, Staff
from callcenter.store.models.desk import GroupAssignment

MIN_MEMBERS = 2
MAX_MEMBERS = 3


class GroupRuleError(ValueError):
    """A group that breaks the composition rule; ``code`` keys ``web.groups.errors.<code>``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def check_composition(members: Sequence[Staff]) -> None:
    if not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
        raise GroupRuleError("size")
    if not any(m.back_office for m in members):
        raise GroupRuleError("no_back_office")
    if len({m.id for m in members}) != len(members):
        raise GroupRuleError("duplicate_member")


def _set_members(s: Session, group: ServiceGroup, member_ids: Sequence[int]) -> None:
    found = [s.get(Staff, mid) for mid in member_ids]
    members = [m for m in found if m is not None and m.active]
    if len(members) != len(found):
        raise GroupRuleError("unknown_member")
    check_composition(members)
    for m in members:
        if m.service_group_id not in (None, group.id):
            old = s.get(ServiceGroup, m.service_group_id)
            remaining = [x for x in old.members if x.id != m.id and x.active] if old else []
            if remaining and (len(remaining) < MIN_MEMBERS or not any(x.back_office for x in remaining)):
                raise GroupRuleError("would_break_other_group")
    for old_member in list(group.members):
        if old_member.id not in member_ids:
            old_member.service_group_id = None
    for m in members:
        m.service_group_id = group.id


def create_group(sessions: sessionmaker[Session], name: str, member_ids: Sequence[int],
                 supervisor_id: int | None = None, branch: str = "") -> int:
    def work(s: Session) -> int:
        if s.execute(select(ServiceGroup.id).where(ServiceGroup.name == name)).first():
            raise GroupRuleError("name_taken")
        group = ServiceGroup(name=name.strip()[:64], branch=branch, supervisor_id=supervisor_id)
        s.add(group)
        s.flush()
        _set_members(s, group, member_ids)
        return group.id

    return run_in_transaction(sessions, work)


def set_members(sessions: sessionmaker[Session], group_id: int, member_ids: Sequence[int]) -> None:
    def work(s: Session) -> None:
        group = s.get(ServiceGroup, group_id)
        if group is None:
            raise GroupRuleError("unknown_group")
        _set_members(s, group, member_ids)

    run_in_transaction(sessions, work)


@dataclass(frozen=True)
class GroupView:
    id: int
    name: str
    supervisor_id: int | None
    members: tuple[tuple[int, str, bool], ...]  # (staff id, display name, back office)
    clients: int
    valid: bool


def list_groups(s: Session, group_ids: frozenset[int] | None = None) -> list[GroupView]:
    """Groups (all when ``group_ids`` is None), with members and whether they meet the composition rule."""
    q = select(ServiceGroup).order_by(ServiceGroup.id)
    if group_ids is not None:
        q = q.where(ServiceGroup.id.in_(group_ids))
    counts = dict(s.execute(select(Client.service_group_id, func.count()).group_by(Client.service_group_id)).all())
    out = []
    for g in s.execute(q).scalars():
        members = tuple((m.id, m.display_name, m.back_office) for m in g.members if m.active)
        valid = MIN_MEMBERS <= len(members) <= MAX_MEMBERS and any(b for _, _, b in members)
        out.append(GroupView(g.id, g.name, g.supervisor_id, members, counts.get(g.id, 0), valid))
    return out


def client_assets_fen(s: Session, client_id: int) -> int:
    return sum(a.total_assets_fen for a in account_balances(s, client_id))


Contribution = Callable[[Session, Client], int]


def assets_contribution(s: Session, client: Client) -> int:
    """Default (potential) contribution: total assets in fen. Plug in commissions when a trade feed exists."""
    return client_assets_fen(s, client.id)


def assign_month(sessions: sessionmaker[Session], month: str, *, top_n: int = 200,
                 contribution: Contribution = assets_contribution) -> dict[int, list[int]]:
    """Rank the active off-site clients by contribution, keep the top ``top_n``, deal them to the valid groups
    in snake order (1,2,3,3,2,1,...) so every group gets a fair share of the biggest; record the month's
    assignment and set each client's service group. Re-running a month replaces its assignment.
    Returns group id -> client ids."""
    if len(month) != 7 or month[4] != "-":
        raise ValueError("month must be YYYY-MM")

    def work(s: Session) -> dict[int, list[int]]:
        groups = [g.id for g in list_groups(s) if g.valid]
        if not groups:
            raise GroupRuleError("no_valid_group")
        clients = s.execute(select(Client).where(Client.onsite.is_(False), Client.status == "active")
                            .order_by(Client.id)).scalars().all()
        ranked = sorted(((contribution(s, c), c) for c in clients), key=lambda x: (-x[0], x[1].id))[:top_n]
        s.execute(delete(GroupAssignment).where(GroupAssignment.month == month))
        result: dict[int, list[int]] = {g: [] for g in groups}
        n = len(groups)
        for i, (value, client) in enumerate(ranked):
            lap, pos = divmod(i, n)
            gid = groups[pos if lap % 2 == 0 else n - 1 - pos]
            result[gid].append(client.id)
            client.service_group_id = gid
            s.add(GroupAssignment(month=month, client_id=client.id, group_id=gid, rank=i + 1,
                                  contribution_fen=value))
        return result

    return run_in_transaction(sessions, work)
