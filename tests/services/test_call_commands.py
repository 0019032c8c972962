"""Durable call commands: the agent's hang-up is a ``call_commands`` row written with the desk's own
bookkeeping; the dialler that owns the call (now) claims it once, oldest first, carries it out and records the
outcome; a lost nudge only delays it; stale rows expire."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.domain.events import CommandQueued
from callcenter.services import call_commands, desk
from callcenter.services.call_commands import ClaimedCommand, claim, command_loop, expire_stale, finish
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models import CallCommand
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import Attempt
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db
WAIT = 10.0  # a bound against hanging, never a timing assertion


@pytest.fixture
def world(core: App) -> World:
    w = build(core)
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Attempt, w.attempt), "dialer_id", "d1"))
    return w


def open_call(core: App, world: World) -> int:
    """The desk contact of the world's attempt, as the dialler opens it when the call reaches ag1."""
    facts = desk.ContactFacts(client_id=world.mine, attempt_id=world.attempt, lead_id=world.lead,
                              campaign_id=world.campaign, attempt_no=2)
    return run_in_transaction(core.sessions, lambda s: desk.open_contact(s, world.staff["ag1"], facts, core.clock()))


def commands(core: App) -> list[CallCommand]:
    with transaction(core.sessions) as s:
        rows = list(s.scalars(select(CallCommand).order_by(CallCommand.id)))
        s.expunge_all()
    return rows


def test_hang_up_route_writes_the_command_with_the_desk_bookkeeping(core: App, world: World) -> None:
    contact_id = open_call(core, world)
    c = TestClient(create_app(core), raise_server_exceptions=False)
    h = {"X-CSRF-Token": page_login(c, "ag1")}
    other = TestClient(create_app(core), raise_server_exceptions=False)
    oh = {"X-CSRF-Token": page_login(other, "ag2")}
    assert other.post(f"/api/desk/contacts/{contact_id}/hangup", headers=oh).status_code == 404  # not theirs
    assert commands(core) == []
    assert c.post(f"/api/desk/contacts/{contact_id}/hangup", headers=h).status_code == 200
    [cmd] = commands(core)
    assert (cmd.kind, cmd.state, cmd.contact_id, cmd.attempt_id, cmd.dialer_id, cmd.requested_by) == (
        "hangup", "pending", contact_id, world.attempt, "d1", world.staff["ag1"])
    with transaction(core.sessions) as s:
        assert s.get(DeskContact, contact_id).hung_up_at == cmd.requested_at
    # pressed again: the call is no longer live, nothing more to send
    assert c.post(f"/api/desk/contacts/{contact_id}/hangup", headers=h).status_code == 200
    assert len(commands(core)) == 1
    # disposing a hung-up call queues nothing either
    assert c.post(f"/api/desk/contacts/{contact_id}/dispose", headers=h,
                  json={"disposition": "not_interested"}).status_code == 200
    assert len(commands(core)) == 1


def test_disposing_a_live_call_queues_its_hang_up(core: App, world: World) -> None:
    contact_id = open_call(core, world)
    c = TestClient(create_app(core), raise_server_exceptions=False)
    h = {"X-CSRF-Token": page_login(c, "ag1")}
    r = c.post(f"/api/desk/contacts/{contact_id}/dispose", headers=h, json={"disposition": "bogus"})
    assert r.status_code == 422 and commands(core) == []  # refused: no command
    r = c.post(f"/api/desk/contacts/{contact_id}/dispose", headers=h, json={"disposition": "not_interested"})
    assert r.status_code == 200, r.text
    [cmd] = commands(core)
    assert (cmd.kind, cmd.contact_id, cmd.dialer_id, cmd.state) == ("hangup", contact_id, "d1", "pending")


def test_a_contact_with_no_dialler_attempt_gets_no_command(core: App, world: World) -> None:
    facts = desk.ContactFacts(client_id=world.mine, ivr_session_id=5)
    ag1 = world.staff["ag1"]
    contact_id = run_in_transaction(core.sessions, lambda s: desk.open_contact(s, ag1, facts, core.clock()))
    got = run_in_transaction(core.sessions, lambda s: call_commands.request_hangup(s, ag1, contact_id, core.clock()))
    assert got is None and commands(core) == []
    with transaction(core.sessions) as s:
        assert s.get(DeskContact, contact_id).hung_up_at is not None  # the desk's own hang-up still happened


def test_claim_takes_the_owners_rows_oldest_first_once_and_follows_a_moved_call(core: App, world: World) -> None:
    ag1, now = world.staff["ag1"], core.clock()
    contact_id = open_call(core, world)

    def queue(at_s: int) -> int:
        def work(s):  # type: ignore[no-untyped-def]
            row = call_commands.queue_hangup(s, s.get(DeskContact, contact_id), ag1, now + timedelta(seconds=at_s))
            assert row is not None
            return row.id
        return run_in_transaction(core.sessions, work)

    later, earlier = queue(5), queue(1)
    assert run_in_transaction(core.sessions, lambda s: claim(s, "d2", now, 10)) == []  # not d2's call
    got = run_in_transaction(core.sessions, lambda s: claim(s, "d1", now + timedelta(seconds=9), 1))
    assert [c.id for c in got] == [earlier]
    assert isinstance(got[0], ClaimedCommand) and (got[0].contact_id, got[0].staff_id) == (contact_id, ag1)
    # the call moved to dialler d2 (d1 restarted elsewhere): its pending command follows it
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Attempt, world.attempt), "dialer_id", "d2"))
    assert run_in_transaction(core.sessions, lambda s: claim(s, "d1", now, 10)) == []
    assert [c.id for c in run_in_transaction(core.sessions, lambda s: claim(s, "d2", now, 10))] == [later]
    assert run_in_transaction(core.sessions, lambda s: claim(s, "d2", now, 10)) == []  # claimed once
    run_in_transaction(core.sessions, lambda s: finish(s, earlier, True, "", now + timedelta(seconds=10)))
    run_in_transaction(core.sessions, lambda s: finish(s, later, False, "no such call", now + timedelta(seconds=10)))
    states = {c.id: (c.state, c.claimed_by, c.result) for c in commands(core)}
    assert states == {earlier: ("done", "d1", ""), later: ("failed", "d2", "no such call")}
    with pytest.raises(ValueError):
        run_in_transaction(core.sessions, lambda s: claim(s, "", now, 10))


def test_stale_commands_expire_and_a_late_finish_does_not_revive_them(core: App, world: World) -> None:
    ag1, now = world.staff["ag1"], core.clock()
    contact_id = open_call(core, world)

    def queue(s):  # type: ignore[no-untyped-def]
        a = call_commands.queue_hangup(s, s.get(DeskContact, contact_id), ag1, now)
        b = call_commands.queue_hangup(s, s.get(DeskContact, contact_id), ag1, now + timedelta(minutes=9))
        assert a is not None and b is not None
        return a.id, b.id

    old, fresh = run_in_transaction(core.sessions, queue)
    [claimed] = run_in_transaction(core.sessions, lambda s: claim(s, "d1", now, 1))
    assert claimed.id == old
    n = run_in_transaction(core.sessions, lambda s: expire_stale(s, now + timedelta(minutes=10), timedelta(minutes=5)))
    assert n == 1
    run_in_transaction(core.sessions, lambda s: finish(s, old, True, "", now + timedelta(minutes=11)))
    assert {c.id: c.state for c in commands(core)} == {old: "expired", fresh: "pending"}


async def _until(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_command_loop_wakes_on_its_nudge_executes_outside_and_records(core: App, world: World) -> None:
    ag1, now = world.staff["ag1"], core.clock()
    contact_id = open_call(core, world)
    done: list[ClaimedCommand] = []
    answers = iter([True, False])

    async def execute(cmd: ClaimedCommand) -> bool:
        done.append(cmd)
        if len(done) == 3:
            raise RuntimeError("port broke")
        return next(answers)

    def queue() -> int:
        def work(s):  # type: ignore[no-untyped-def]
            row = call_commands.queue_hangup(s, s.get(DeskContact, contact_id), ag1, now)
            assert row is not None
            return row.id
        return run_in_transaction(core.sessions, work)

    stop = asyncio.Event()
    # polls only once a minute: within the test's bound, only a nudge makes it claim
    loop = asyncio.create_task(command_loop(core.sessions, core.bus, "d1", execute, stop, poll_s=60,
                                            clock=core.clock))
    try:
        await asyncio.sleep(0.05)  # let it subscribe and do its first (empty) round
        first = queue()
        core.bus.emit(CommandQueued(dialer_id="d2", command_id=first))  # another dialler's nudge: not for it
        await asyncio.sleep(0.2)
        assert done == []
        core.bus.emit(CommandQueued(dialer_id="d1", command_id=first))
        await _until(lambda: len(done) == 1, "the nudged command")
        assert (done[0].id, done[0].contact_id, done[0].staff_id) == (first, contact_id, ag1)
        await _until(lambda: commands(core)[0].state == "done", "the outcome")
        second = queue()
        core.bus.emit(CommandQueued(dialer_id="d1", command_id=second))
        await _until(lambda: [c.state for c in commands(core)] == ["done", "failed"], "a failed command")
        third = queue()
        core.bus.emit(CommandQueued(dialer_id="d1", command_id=third))
        await _until(lambda: [c.state for c in commands(core)] == ["done", "failed", "failed"], "an error")
    finally:
        stop.set()
        await asyncio.wait_for(loop, WAIT)
    rows = commands(core)
    assert [r.result for r in rows][:2] == ["", "no such call"] and "port broke" in rows[2].result


async def test_a_lost_nudge_only_delays_the_command(core: App, world: World) -> None:
    ag1, now = world.staff["ag1"], core.clock()
    contact_id = open_call(core, world)
    cmd = run_in_transaction(core.sessions, lambda s: call_commands.request_hangup(s, ag1, contact_id, now))
    assert cmd is not None  # queued before any loop runs, and never announced
    done: list[int] = []

    async def execute(c: ClaimedCommand) -> bool:
        done.append(c.id)
        return True

    stop = asyncio.Event()
    loop = asyncio.create_task(command_loop(core.sessions, core.bus, "d1", execute, stop, poll_s=0.05,
                                            clock=core.clock))
    try:
        await _until(lambda: commands(core)[0].state == "done", "the polled command")
    finally:
        stop.set()
        await asyncio.wait_for(loop, WAIT)
    assert done == [cmd.id]


def test_two_claimers_at_once_take_each_command_once(core: App, world: World) -> None:
    import threading

    ag1, now = world.staff["ag1"], core.clock()
    contact_id = open_call(core, world)

    def queue(s):  # type: ignore[no-untyped-def]
        rows = [call_commands.queue_hangup(s, s.get(DeskContact, contact_id), ag1, now + timedelta(seconds=i))
                for i in range(8)]
        return [r.id for r in rows if r is not None]

    ids = run_in_transaction(core.sessions, queue)
    start = threading.Barrier(2)
    got: list[list[int]] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        try:
            start.wait(WAIT)
            for _ in range(4):
                got.append([c.id for c in run_in_transaction(core.sessions, lambda s: claim(s, "d1", now, 2))])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT * 3)
    assert not errors, errors
    claimed = [i for batch in got for i in batch]
    assert sorted(claimed) == ids  # every command claimed, none twice
    assert all(batch == sorted(batch) for batch in got)  # oldest first within a claim
