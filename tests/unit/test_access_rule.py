"""The one access rule (callcenter.domain.access), as a table: who reads a client, who moves its money."""

from __future__ import annotations

import pytest

from callcenter.domain.access import Actor, may_move_money, may_read_client

MINE, THEIRS, ON_CALL = 1, 2, 3  # client ids; groups: MINE in 10, THEIRS in 20, ON_CALL in 30
GROUP = {MINE: 10, THEIRS: 20, ON_CALL: 30}

AGENT = Actor.staff("agent", 100, {10}, {ON_CALL})
SUPERVISOR = Actor.staff("supervisor", 200, {10})
ADMIN = Actor.staff("admin", 300)
CLIENT = Actor.client(MINE)
TOOL = Actor.back_office("bench")


@pytest.mark.parametrize(("actor", "reads", "moves"), [
    (AGENT, {MINE, ON_CALL}, set()),
    (SUPERVISOR, {MINE}, {MINE}),
    (ADMIN, {MINE, THEIRS, ON_CALL}, set()),
    (CLIENT, {MINE}, {MINE}),
    (TOOL, {MINE, THEIRS, ON_CALL}, {MINE, THEIRS, ON_CALL}),
], ids=["agent", "supervisor", "admin", "ivr-client", "back-office"])
def test_the_rule(actor: Actor, reads: set[int], moves: set[int]) -> None:
    assert {c for c in GROUP if may_read_client(actor, c, GROUP[c])} == reads
    assert {c for c in GROUP if may_move_money(actor, c, GROUP[c])} == moves


def test_a_client_without_a_group_is_nobodys_but_admins_and_their_own() -> None:
    assert not may_read_client(SUPERVISOR, 9, None) and not may_move_money(SUPERVISOR, 9, None)
    assert not may_read_client(Actor.staff("agent", 1, set()), 9, None)
    assert may_read_client(ADMIN, 9, None) and not may_move_money(ADMIN, 9, None)
    assert may_move_money(Actor.client(9), 9, None)


def test_scopes_separate_principals() -> None:
    scopes = {a.scope for a in (AGENT, SUPERVISOR, ADMIN, CLIENT, TOOL, Actor.staff("supervisor", 201, {20}),
                                Actor.client(THEIRS))}
    assert len(scopes) == 7
    assert Actor.staff("supervisor", 200, {10}).scope == SUPERVISOR.scope  # the same person: the same scope
    with pytest.raises(ValueError):
        Actor.staff("client", 5)
