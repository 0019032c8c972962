"""The world of the live reminder call (tests/live/test_live_notify.py) and of its replay
(tests/adapters/test_live_captures.py): built the same way on a fresh database, so the ids the recording holds --
the agent's staff id (its room ``agent-<id>``, its phone ``Local/<id>@sim-agent-phones``), the client's number
(the Local channel ``Local/<digits>@sim-notified``), the delivery id in the call id ``care-<id>-1`` and the IVR
session id in the hand-off's call id ``cc-h<id>`` -- are the ids of the replay too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.adapters.telephony.ami import AmiOptions, AmiPool
from callcenter.bootstrap import App, prompt_files
from callcenter.parts.dialer import dialer_deps
from callcenter.ports import channel_variables as V
from callcenter.services.care.notify_calls import NotificationCaller
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareCallback, CareDelivery
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentStateChange, Callback
from callcenter.store.models.ivr import IvrSession
from tests.adapters.ami_scenarios import OPTIONS
from tests.factories import make_client, make_group, make_staff

MOBILE = "+8613900000015"
MESSAGE = "您持有的权证明天是最后行权日，请留意。"
# the client's side of the Local channel (tests/live/sim-parties.conf [sim-notified]) answers, presses 1, then 0
NOTIFY_OPTIONS: AmiOptions = replace(OPTIONS, dial_template="Local/{digits}@sim-notified")


@dataclass(frozen=True)
class NotifyWorld:
    staff_id: int
    client_id: int
    delivery_id: int

    @property
    def phone(self) -> str:
        return f"Local/{self.staff_id}@sim-agent-phones"

    @property
    def call_id(self) -> str:
        return f"care-{self.delivery_id}-1"


def build_notify_world(core: App, now: datetime) -> NotifyWorld:
    group = make_group(core, "通知组")
    staff_id = make_staff(core, "note1", "pw-note-1", "agent", group_id=group)
    client_id, _ = make_client(core, accounts=[(100_00, 0)], group_id=group)

    def work(s: Session) -> int:
        s.get_one(Client, client_id).mobile = MOBILE
        d = CareDelivery(client_id=client_id, subject="event:1", channel="notify_call", planned_for=date(2026, 12, 2),
                         language="zh-CN", message=MESSAGE, status="pending", attempts=0, claimed_at=now,
                         updated_at=now)
        s.add(d)
        s.flush()
        return d.id

    return NotifyWorld(staff_id, client_id, run_in_transaction(core.sessions, work))


Until = Callable[[str, Callable[[], bool]], Awaitable[None]]


@asynccontextmanager
async def notify_engine(core: App, pool: AmiPool, timeout_s: float,
                        **engine_kw: Any) -> AsyncIterator[tuple[DialerEngine, NotificationCaller, Until]]:
    """The dialler engine with the notification caller on ``pool``, running; ``until(what, cond)`` waits for a
    condition (bounded by ``timeout_s`` against hanging, never a timing assertion). Stopped on leaving."""
    notify = NotificationCaller(core, pool, renderer=prompt_files(core.settings))
    engine = DialerEngine(dialer_deps(core, notify=notify), pool, dialer_id="live-notify", auto_wrap_up_s=None,
                          **engine_kw)
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.run(stop))
    loop = asyncio.get_running_loop()

    async def until(what: str, cond: Callable[[], bool]) -> None:
        deadline = loop.time() + timeout_s
        while not cond():
            assert loop.time() < deadline, f"{what}: not within {timeout_s:g} s"
            await asyncio.sleep(0.05)

    try:
        yield engine, notify, until
    finally:
        stop.set()
        await asyncio.wait_for(runner, 15)


async def run_reminder_call(core: App, pool: AmiPool, world: NotifyWorld,
                            hang_up: Callable[[str], Awaitable[object]], timeout_s: float = 60.0) -> str:
    """The scenario, live and replayed alike: the dialler engine with the notification caller on ``pool``; the
    agent logs in at their phone and goes ready; once the phone is in its room the reminder is placed (its message
    rendered first); the client presses 1 (the message again) then 0: the call becomes the hand-off ``cc-h<id>``,
    waits in ``[cc-handoff-wait]`` and the core Redirects it into the agent's room, the desk contact opens as the
    agent goes talking; ``hang_up(call id)`` ends the client's side and the agent goes to wrap-up. Returns the
    hand-off's call id."""
    async with notify_engine(core, pool, timeout_s) as (engine, notify, until):
        dialer.agent_login(core, world.staff_id, phone=world.phone)
        dialer.agent_ready(core, world.staff_id)
        await until("the agent's phone in its room", lambda: world.staff_id in engine.core.phones)
        assert await notify.place_due() == 1
        assert (core.settings.prompts_path / "care" / f"notify-{world.delivery_id}.wav").read_bytes()[:4] == b"RIFF"
        await until("the desk contact", lambda: bool(run_in_transaction(core.sessions, lambda s: s.scalars(
            select(DeskContact.id)).first())))
        with transaction(core.sessions) as s:
            ivr = s.scalars(select(IvrSession).where(IvrSession.call_id == world.call_id)).one()
            contact = s.scalars(select(DeskContact)).one()
            assert (ivr.channel, ivr.handed_off, ivr.client_id) == ("notify", True, world.client_id)
            assert (contact.agent_id, contact.client_id, contact.ivr_session_id, contact.direction) == (
                world.staff_id, world.client_id, ivr.id, "inbound")
            delivery = s.get_one(CareDelivery, world.delivery_id)
            handoff = V.handoff_call_id(ivr.id)
            assert (delivery.status, delivery.detail) == ("to_agent", f"handoff {handoff}")
        await hang_up(handoff)  # the client hangs up (live: once seen in the agent's room)
        await until("the agent in wrap-up", lambda: dialer.agent_state(core, world.staff_id)["state"] == "wrap_up")
        with transaction(core.sessions) as s:
            assert s.get_one(IvrSession, ivr.id).end_reason == "completed"
            moves = [(c.to_state, c.reason) for c in s.scalars(select(AgentStateChange).where(
                AgentStateChange.staff_id == world.staff_id).order_by(AgentStateChange.id))]
        assert [m[0] for m in moves][-3:] == ["reserved", "talking", "wrap_up"], moves
        assert not engine.core.inbound and not notify.flows
        return handoff


async def run_reminder_nobody_free(core: App, pool: AmiPool, world: NotifyWorld, *, zero: str,
                                   timeout_s: float = 60.0) -> None:
    """The same reminder call with no agent ready (the agent never logs in): 1 repeats the message, then 0.
    ``zero = "callback"``: a call back is booked at once and the client hears "all our agents are busy, we will
    call you back" (``cc/<lang>/handoff_sorry`` through ``[cc-play]``) before the call ends. ``zero = "agent"``:
    the call becomes the hand-off ``cc-h<id>`` and waits in ``[cc-handoff-wait]``; after ``handoff_wait_s`` (set
    short here) the call core plays the same sorry prompt and books the call back. Either way the delivery is
    ``to_agent`` and the client is called back; no agent is ever reserved."""
    core.settings.notify_zero = zero
    def booked() -> list[tuple[str, int | None]]:
        with transaction(core.sessions) as s:
            care = [("care", c.client_id) for c in s.scalars(select(CareCallback))]
            dialled = [("dialler", c.client_id) for c in s.scalars(select(Callback))]
        return care + dialled

    async with notify_engine(core, pool, timeout_s, handoff_wait_s=3.0) as (engine, notify, until):
        assert await notify.place_due() == 1
        await until("the call back booked", lambda: bool(booked()))
        await until("the call over", lambda: not notify.flows and not engine.core.inbound
                    and pool.clients[0].tracker.channel_of(world.call_id) is None)
        with transaction(core.sessions) as s:
            delivery = s.get_one(CareDelivery, world.delivery_id)
            assert delivery.status == "to_agent", (delivery.status, delivery.detail)
            sessions = list(s.scalars(select(IvrSession)))
            assert not s.scalars(select(DeskContact)).first()  # nobody took it
        assert booked() == [("care" if zero == "callback" else "dialler", world.client_id)]
        if zero == "agent":  # the hand-off waited, then ended with the call back
            [ivr] = sessions
            assert ivr.handed_off and ivr.ended_at is not None, (ivr.end_reason,)
        else:
            assert sessions == []  # never handed off
